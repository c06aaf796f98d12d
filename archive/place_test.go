package archive

import (
	"fmt"
	"testing"

	"github.com/kith-project/kith/seed"
)

func dev(i byte) seed.DevicePublic { return seed.DevicePublic{i} }

// apply applies a plan's copies to placements, checking each copy's source
// holds the blob and its target does not.
func apply(t *testing.T, blobs []Placement, plan Plan) map[BlobName][]seed.DevicePublic {
	t.Helper()
	h := make(map[BlobName][]seed.DevicePublic)
	for _, b := range blobs {
		h[b.Name] = append(h[b.Name], b.Holders...)
	}
	for _, c := range plan.Copies {
		has := func(d seed.DevicePublic) bool {
			for _, x := range h[c.Blob] {
				if x == d {
					return true
				}
			}
			return false
		}
		if !has(c.From) || has(c.To) {
			t.Fatalf("copy %s from %x to %x: source lacks it or target has it", c.Blob.Short(), c.From[0], c.To[0])
		}
		h[c.Blob] = append(h[c.Blob], c.To)
	}
	return h
}

func TestPlanRepairLostDevice(t *testing.T) {
	n := names("pl", 20)
	// Devices 1, 2, 3 are own; 10 and 11 are friends' relays. Device 2 is lost.
	devices := []Device{
		{ID: dev(1), Own: true, Online: true, Free: -1},
		{ID: dev(3), Own: true, Online: true, Free: -1},
		{ID: dev(10), Online: true, Free: 1 << 30},
		{ID: dev(11), Online: true, Free: 1 << 30},
	}
	var blobs []Placement
	for i, name := range n {
		holders := []seed.DevicePublic{dev(1), dev(2)}
		if i%2 == 1 {
			holders = []seed.DevicePublic{dev(2), dev(10)}
		}
		blobs = append(blobs, Placement{Name: name, Size: 1000, Holders: holders})
	}
	plan := PlanRepair(PlanInput{Blobs: blobs, Devices: devices, Lost: []seed.DevicePublic{dev(2)}})
	if len(plan.Stuck) != 0 {
		t.Fatalf("stuck: %+v", plan.Stuck)
	}
	if len(plan.Forget) != 20 {
		t.Fatalf("%d placements to forget, want the 20 on the lost device", len(plan.Forget))
	}
	if len(plan.Copies) != 20 {
		t.Fatalf("%d copies, want 20", len(plan.Copies))
	}
	after := apply(t, blobs, plan)
	perTarget := map[seed.DevicePublic]int{}
	for _, c := range plan.Copies {
		perTarget[c.To]++
	}
	for name, hs := range after {
		live := 0
		for _, h := range hs {
			if h != dev(2) {
				live++
			}
		}
		if live < 2 {
			t.Fatalf("blob %s has %d live holders", name.Short(), live)
		}
	}
	// Own devices come first: nothing goes to a relay while an own device
	// without the blob has room.
	if perTarget[dev(11)] != 0 || perTarget[dev(10)] != 0 {
		t.Fatalf("copies went to relays while own devices had room: %v", perTarget)
	}
	// Blobs held by 1 went to 3; blobs held by 10 spread over 1 and 3.
	if perTarget[dev(3)] < 10 || perTarget[dev(1)] == 0 {
		t.Fatalf("load not spread: %v", perTarget)
	}
	// Deterministic.
	again := PlanRepair(PlanInput{Blobs: blobs, Devices: devices, Lost: []seed.DevicePublic{dev(2)}})
	if fmt.Sprint(again) != fmt.Sprint(plan) {
		t.Fatal("the same input gave another plan")
	}
}

func TestPlanRepairRelaysAndQuota(t *testing.T) {
	n := names("q", 6)
	// One own device online; relays 10 (room for 2 blobs) and 11 (room for 3).
	devices := []Device{
		{ID: dev(1), Own: true, Online: true, Free: -1},
		{ID: dev(10), Online: true, Free: 2000},
		{ID: dev(11), Online: true, Free: 3000},
		{ID: dev(12), Online: false, Free: -1},
	}
	var blobs []Placement
	for _, name := range n {
		blobs = append(blobs, Placement{Name: name, Size: 1000, Holders: []seed.DevicePublic{dev(1)}})
	}
	plan := PlanRepair(PlanInput{Blobs: blobs, Devices: devices})
	if len(plan.Copies) != 5 || len(plan.Stuck) != 1 || plan.Stuck[0].Reason != "no device online has room" || plan.Stuck[0].Live != 1 {
		t.Fatalf("plan %+v", plan)
	}
	to := map[seed.DevicePublic]int{}
	for _, c := range plan.Copies {
		to[c.To]++
		if c.From != dev(1) {
			t.Fatal("a copy from a device that does not hold the blob")
		}
	}
	if to[dev(10)] != 2 || to[dev(11)] != 3 || to[dev(12)] != 0 {
		t.Fatalf("targets %v: quotas not respected, or an offline device chosen", to)
	}
}

func TestPlanRepairStuckAndOffline(t *testing.T) {
	n := names("s", 4)
	devices := []Device{
		{ID: dev(1), Own: true, Online: true, Free: -1},
		{ID: dev(2), Own: true, Online: false, Free: -1},
		{ID: dev(3), Own: true, Online: true, Free: -1},
	}
	blobs := []Placement{
		{Name: n[0], Size: 1, Holders: []seed.DevicePublic{dev(1), dev(2)}}, // offline holder still counts
		{Name: n[1], Size: 1, Holders: []seed.DevicePublic{dev(9)}},         // only on a lost device
		{Name: n[2], Size: 1, Holders: []seed.DevicePublic{dev(2)}},         // only on an offline device
		{Name: n[3], Size: 1, Holders: []seed.DevicePublic{dev(1), dev(1)}}, // listed twice counts once
	}
	plan := PlanRepair(PlanInput{Blobs: blobs, Devices: devices, Lost: []seed.DevicePublic{dev(9)}})
	reasons := map[BlobName]string{}
	for _, s := range plan.Stuck {
		reasons[s.Blob] = s.Reason
	}
	if reasons[n[1]] != "no copy left" || reasons[n[2]] != "no holder online" || len(reasons) != 2 {
		t.Fatalf("stuck %+v", plan.Stuck)
	}
	if len(plan.Copies) != 1 || plan.Copies[0].Blob != n[3] || plan.Copies[0].To != dev(3) {
		t.Fatalf("copies %+v", plan.Copies)
	}
	if len(plan.Forget) != 1 || plan.Forget[0].Device != dev(9) {
		t.Fatalf("forget %+v", plan.Forget)
	}
	// MinReplicas 3.
	plan = PlanRepair(PlanInput{Blobs: blobs[:1], Devices: devices, MinReplicas: 3})
	if len(plan.Copies) != 1 || plan.Copies[0].To != dev(3) {
		t.Fatalf("min 3: %+v", plan)
	}
}
