package archive

import (
	"bytes"
	"slices"

	"github.com/kith-project/kith/seed"
)

// DefaultMinReplicas is how many live holders every blob should have.
const DefaultMinReplicas = 2

// Device is a device that can hold blobs, as the planner sees it.
type Device struct {
	ID seed.DevicePublic
	// Own is true for the user's own devices, false for a friend's device
	// acting as an archive relay.
	Own bool
	// Online means the device is reachable now, so it can send or receive
	// a copy. A device that is offline but not lost still counts as a
	// holder.
	Online bool
	// Free is how many more bytes the device takes: what is left of a
	// relay's quota, or of an own device's room. Negative means no limit.
	Free int64
}

// Placement is where one blob is held.
type Placement struct {
	Name    BlobName
	Size    int64
	Holders []seed.DevicePublic
}

// PlanInput is what the planner plans from.
type PlanInput struct {
	Blobs   []Placement
	Devices []Device
	// Lost are devices revoked or gone past the threshold: their copies do
	// not count, and they neither send nor receive.
	Lost []seed.DevicePublic
	// MinReplicas is how many holders each blob should have; 0 means
	// DefaultMinReplicas.
	MinReplicas int
}

// Copy is one action: send the blob from a holder to a new one.
type Copy struct {
	Blob     BlobName
	Size     int64
	From, To seed.DevicePublic
}

// Holding is one blob on one device.
type Holding struct {
	Blob   BlobName
	Device seed.DevicePublic
}

// Stuck is a blob that the plan cannot bring up to MinReplicas now.
type Stuck struct {
	Blob BlobName
	// Live is how many holders it has that count, with the plan's copies.
	Live int
	// Reason says why, for people: "no copy left", "no holder online",
	// "no device online has room".
	Reason string
}

// Plan is what PlanRepair returns.
type Plan struct {
	// Copies bring blobs up to MinReplicas.
	Copies []Copy
	// Forget are placements on lost devices, to drop from the cluster
	// state.
	Forget []Holding
	// Stuck are blobs still below MinReplicas after the copies.
	Stuck []Stuck
}

// PlanRepair returns the copies that give every blob MinReplicas live
// holders. A holder counts if it is among in.Devices and not in in.Lost.
// Copies go from an online holder to an online device that does not hold
// the blob and has room, the user's own devices first, then friends'
// relays, each time the one holding the fewest bytes so far (spreading
// load), and the source that has sent the fewest bytes. The plan is
// deterministic: the same input gives the same plan. PlanRepair is a pure
// function and does not modify in.
func PlanRepair(in PlanInput) Plan {
	min := in.MinReplicas
	if min <= 0 {
		min = DefaultMinReplicas
	}
	lost := make(map[seed.DevicePublic]bool, len(in.Lost))
	for _, d := range in.Lost {
		lost[d] = true
	}
	devices := make(map[seed.DevicePublic]Device, len(in.Devices))
	for _, d := range in.Devices {
		if !lost[d.ID] {
			devices[d.ID] = d
		}
	}
	load := make(map[seed.DevicePublic]int64)
	for _, b := range in.Blobs {
		for _, h := range b.Holders {
			load[h] += b.Size
		}
	}
	free := make(map[seed.DevicePublic]int64, len(devices))
	for id, d := range devices {
		free[id] = d.Free
	}
	sent := make(map[seed.DevicePublic]int64)

	blobs := slices.Clone(in.Blobs)
	slices.SortFunc(blobs, func(a, b Placement) int { return bytes.Compare(a.Name[:], b.Name[:]) })
	var plan Plan
	for _, b := range blobs {
		holds := make(map[seed.DevicePublic]bool)
		var sources []Device
		live := 0
		for _, h := range b.Holders {
			if lost[h] {
				plan.Forget = append(plan.Forget, Holding{Blob: b.Name, Device: h})
				continue
			}
			d, ok := devices[h]
			if !ok || holds[h] {
				continue
			}
			holds[h] = true
			live++
			if d.Online {
				sources = append(sources, d)
			}
		}
		if live >= min {
			continue
		}
		if live == 0 {
			plan.Stuck = append(plan.Stuck, Stuck{Blob: b.Name, Reason: "no copy left"})
			continue
		}
		if len(sources) == 0 {
			plan.Stuck = append(plan.Stuck, Stuck{Blob: b.Name, Live: live, Reason: "no holder online"})
			continue
		}
		for live < min {
			to, ok := pickTarget(devices, holds, free, load, b.Size)
			if !ok {
				plan.Stuck = append(plan.Stuck, Stuck{Blob: b.Name, Live: live, Reason: "no device online has room"})
				break
			}
			from := pickSource(sources, sent)
			plan.Copies = append(plan.Copies, Copy{Blob: b.Name, Size: b.Size, From: from, To: to})
			holds[to] = true
			live++
			load[to] += b.Size
			if free[to] >= 0 {
				free[to] -= b.Size
			}
			sent[from] += b.Size
		}
	}
	return plan
}

// pickTarget returns the online device without the blob with room for it:
// own before friends', then the least loaded, then the lowest ID.
func pickTarget(devices map[seed.DevicePublic]Device, holds map[seed.DevicePublic]bool, free, load map[seed.DevicePublic]int64, size int64) (seed.DevicePublic, bool) {
	var best Device
	found := false
	for id, d := range devices {
		if !d.Online || holds[id] || (free[id] >= 0 && free[id] < size) {
			continue
		}
		if !found || better(d, best, load) {
			best, found = d, true
		}
	}
	return best.ID, found
}

func better(a, b Device, load map[seed.DevicePublic]int64) bool {
	if a.Own != b.Own {
		return a.Own
	}
	if load[a.ID] != load[b.ID] {
		return load[a.ID] < load[b.ID]
	}
	return bytes.Compare(a.ID[:], b.ID[:]) < 0
}

// pickSource returns the source that has sent the fewest bytes: own before
// friends', then the lowest ID.
func pickSource(sources []Device, sent map[seed.DevicePublic]int64) seed.DevicePublic {
	best := sources[0]
	for _, d := range sources[1:] {
		switch {
		case d.Own != best.Own:
			if d.Own {
				best = d
			}
		case sent[d.ID] != sent[best.ID]:
			if sent[d.ID] < sent[best.ID] {
				best = d
			}
		case bytes.Compare(d.ID[:], best.ID[:]) < 0:
			best = d
		}
	}
	return best.ID
}
