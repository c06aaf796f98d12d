package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/kith-project/kith/archive"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// planInput builds what archive.PlanRepair plans from: the placement,
// this device and every known device (own, and friends' as relays), who
// is online, and who is lost: revoked devices are simply not among the
// devices (their copies do not count), and a device not seen for
// Config.ArchiveGone is lost.
func (ar *archiver) planInput() archive.PlanInput {
	a := ar.a
	self := a.dev.Cert.Device
	online := a.onlineSet()
	now := a.cfg.Now()
	in := archive.PlanInput{Blobs: ar.state.placements(), MinReplicas: archive.DefaultMinReplicas}
	in.Devices = append(in.Devices, archive.Device{ID: self, Own: true, Online: true, Free: -1})
	for _, p := range a.book.reachable() {
		if p.DeviceID.Equal(self) || a.book.revoked(p.DeviceID) {
			continue
		}
		in.Devices = append(in.Devices, archive.Device{ID: p.DeviceID, Own: p.Kind == roster.KindOwn, Online: online[p.DeviceID], Free: -1})
		if !online[p.DeviceID] && !p.LastSeen.IsZero() && now.Sub(p.LastSeen) > a.cfg.ArchiveGone {
			in.Lost = append(in.Lost, p.DeviceID)
		}
	}
	return in
}

// underReplicated counts the blobs with fewer than the minimum of live
// holders.
func (ar *archiver) underReplicated(in archive.PlanInput) int {
	live := map[seed.DevicePublic]bool{}
	for _, d := range in.Devices {
		live[d.ID] = true
	}
	for _, d := range in.Lost {
		delete(live, d)
	}
	n := 0
	for _, b := range in.Blobs {
		c := 0
		for _, h := range b.Holders {
			if live[h] {
				c++
			}
		}
		if c < in.MinReplicas {
			n++
		}
	}
	return n
}

// repair carries out the copies of the repair plan this device is the
// source of, and records each new holder. It also drops the placements of
// lost devices.
func (ar *archiver) repair(ctx context.Context) error {
	a := ar.a
	self := a.dev.Cert.Device
	plan := archive.PlanRepair(ar.planInput())
	var errs []error
	if len(plan.Forget) > 0 {
		var drop []holding
		for _, h := range plan.Forget {
			drop = append(drop, holding{Blob: h.Blob, Device: h.Device})
		}
		if err := ar.place(archivePlace{Drop: drop}); err != nil {
			errs = append(errs, err)
		}
	}
	tried := map[seed.DevicePublic]bool{}
	for _, c := range plan.Copies {
		if ctx.Err() != nil {
			break
		}
		if c.To.Equal(self) && !c.From.Equal(self) {
			// A copy to this device from a friend's relay, which runs no
			// repair of our placement: this device pulls it (its own copy
			// was lost or damaged, say). A copy from an own device is
			// that device's to push.
			if p, ok := a.book.peerFor(c.From); ok && p.Kind == roster.KindOwn {
				continue
			}
			if err := ar.pull(ctx, c, tried); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if !c.From.Equal(self) {
			continue
		}
		if bad := tried[c.To]; bad {
			continue // one failure per device and pass
		}
		data, err := ar.blobs.Get(c.Blob)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading blob %s to copy: %w", c.Blob.Short(), err))
			continue
		}
		if err := ar.putTo(ctx, c.To, c.Blob, data); err != nil {
			var ref *arRefusal
			if errors.As(err, &ref) && ref.Code == arCodeQuota {
				a.log.Info("a relay refused a blob", "device", c.To.Short(), "reason", ref.Reason)
			} else {
				errs = append(errs, fmt.Errorf("copying blob %s to %s: %w", c.Blob.Short(), c.To.Short(), err))
			}
			tried[c.To] = true
			continue
		}
		if err := ar.place(archivePlace{Hold: []holding{{Blob: c.Blob, Size: c.Size, Device: c.To}}}); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, ar.offsite(ctx, tried))
	return errors.Join(errs...)
}

// pull carries out copy c to this device: it fetches the blob from c.From,
// stores it, and records this device as a holder.
func (ar *archiver) pull(ctx context.Context, c archive.Copy, tried map[seed.DevicePublic]bool) error {
	if tried[c.From] {
		return nil // one failure per device and pass
	}
	data, err := ar.fetchFrom(ctx, c.From, c.Blob, nil)
	if err != nil {
		tried[c.From] = true
		return fmt.Errorf("fetching blob %s from %s: %w", c.Blob.Short(), c.From.Short(), err)
	}
	if err := ar.blobs.Put(ar.a.dev.Cert.User, c.Blob, data); err != nil {
		return fmt.Errorf("storing blob %s: %w", c.Blob.Short(), err)
	}
	ar.a.log.Info("repair: fetched a blob this device is to hold", "blob", c.Blob.Short(), "from", c.From.Short())
	return ar.place(archivePlace{Hold: []holding{{Blob: c.Blob, Size: c.Size, Device: ar.a.dev.Cert.Device}}})
}

// offsite gives every blob this device holds a copy on a friend's device
// acting as an archive relay, when one is online and takes it: whatever
// happens to the user's own devices, a friend can give the history back
// (recovery after losing every device, archive_recover.go). It is a copy
// beyond DefaultMinReplicas when the two holders are both own devices.
func (ar *archiver) offsite(ctx context.Context, tried map[seed.DevicePublic]bool) error {
	in := ar.planInput()
	var relays []seed.DevicePublic
	friend := map[seed.DevicePublic]bool{}
	for _, d := range in.Devices {
		if !d.Own {
			friend[d.ID] = true
			if d.Online && !tried[d.ID] {
				relays = append(relays, d.ID)
			}
		}
	}
	if len(relays) == 0 {
		return nil
	}
	self := ar.a.dev.Cert.Device
	var errs []error
	k := 0
	for _, b := range in.Blobs {
		if !slices.Contains(b.Holders, self) || slices.ContainsFunc(b.Holders, func(h seed.DevicePublic) bool { return friend[h] }) {
			continue
		}
		data, err := ar.blobs.Get(b.Name)
		if err != nil {
			continue
		}
		for range relays {
			to := relays[k%len(relays)]
			k++
			if tried[to] || ctx.Err() != nil {
				continue
			}
			if err := ar.putTo(ctx, to, b.Name, data); err != nil {
				var ref *arRefusal
				if errors.As(err, &ref) && ref.Code == arCodeQuota {
					ar.a.log.Info("a relay refused a blob", "device", to.Short(), "reason", ref.Reason)
				} else {
					errs = append(errs, fmt.Errorf("copying blob %s to relay %s: %w", b.Name.Short(), to.Short(), err))
				}
				tried[to] = true
				continue
			}
			if err := ar.place(archivePlace{Hold: []holding{{Blob: b.Name, Size: b.Size, Device: to}}}); err != nil {
				errs = append(errs, err)
			}
			break
		}
	}
	return errors.Join(errs...)
}
