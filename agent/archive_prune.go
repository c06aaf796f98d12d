package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/kith-project/kith/archive"
	"github.com/kith-project/kith/seed"
)

// Pruning superseded indexes (docs/archives.md "Old indexes"). Every pass
// that seals makes a new index, listing every archive: kept forever, the
// indexes would grow quadratically with the archives, on own devices and
// on friends' relays (within the quota a friend gives this user). When an
// index is superseded, the placement (archive_state.go) keeps it, with the
// devices that held it, in its list of old indexes; once it is older than
// the newest two generations (so that a failed copy of the newest still
// leaves the previous one), it is deleted:
//
//   - every own device deletes it from its own folder when the placement
//     that makes it prunable is applied, and again in each pass, and then
//     records that it no longer holds it (Pruned);
//   - the archiver (the own device with the lowest ID online, as for
//     sealing: one device talks to the relays, not every own device) asks
//     each online friend's device that held it to delete it (frame delete
//     of stream 0x08), and records it; a holder that is revoked, no longer
//     known, or gone (Config.ArchiveGone) is recorded as done too.
//
// An old index is followed until maxOldIndexes newer ones push it out. The
// current index and the one before it are never pruned, and neither is
// any archive's blob (archiveState.prunable).

// pruneOwn deletes from this device's folder the superseded indexes it
// holds that are older than the newest two. It returns the names of the
// prunable indexes this folder no longer holds, and how many it deleted.
func (ar *archiver) pruneOwn() (map[archive.BlobName]bool, int, error) {
	todo := ar.state.prunable()
	if len(todo) == 0 {
		return nil, 0, nil
	}
	deleted := 0
	user := ar.a.dev.Cert.User
	held := ar.heldFor(user)
	gone := map[archive.BlobName]bool{}
	var errs []error
	for _, o := range todo {
		if held[o.Name] {
			if err := ar.blobs.Delete(user, o.Name); err != nil {
				errs = append(errs, fmt.Errorf("deleting superseded index %s: %w", o.Name.Short(), err))
				continue
			}
			ar.a.log.Info("deleted a superseded index", "blob", o.Name.Short(), "generation", o.Generation)
			deleted++
		}
		gone[o.Name] = true
	}
	return gone, deleted, errors.Join(errs...)
}

// prune is a pass's part: this device's folder, then, on the archiver,
// the friends' relays; what is done is recorded in the placement.
func (ar *archiver) prune(ctx context.Context) error {
	todo := ar.state.prunable()
	if len(todo) == 0 {
		return nil
	}
	self := ar.a.dev.Cert.Device
	gone, _, err := ar.pruneOwn()
	errs := []error{err}
	var done []holding
	for _, o := range todo {
		if gone[o.Name] && slices.Contains(o.Holders, self) {
			done = append(done, holding{Blob: o.Name, Size: o.Size, Device: self})
		}
	}
	if ar.isArchiver() {
		d, err := ar.pruneRelays(ctx, todo)
		done = append(done, d...)
		errs = append(errs, err)
	}
	if len(done) > 0 {
		errs = append(errs, ar.place(archivePlace{Pruned: done}))
	}
	return errors.Join(errs...)
}

// pruneRelays asks the friends' devices holding the indexes todo to
// delete them, and returns the holdings done: deleted, or whose holder
// will never delete them (revoked, unknown, gone). Own devices delete
// their own copies.
func (ar *archiver) pruneRelays(ctx context.Context, todo []oldIndex) ([]holding, error) {
	in := ar.planInput()
	known := map[seed.DevicePublic]archive.Device{}
	for _, d := range in.Devices {
		known[d.ID] = d
	}
	for _, d := range in.Lost {
		delete(known, d)
	}
	self := ar.a.dev.Cert.Device
	var done []holding
	ask := map[seed.DevicePublic][]oldIndex{}
	var relays []seed.DevicePublic
	for _, o := range todo {
		for _, h := range o.Holders {
			if h.Equal(self) {
				continue
			}
			d, ok := known[h]
			switch {
			case !ok:
				done = append(done, holding{Blob: o.Name, Size: o.Size, Device: h})
			case d.Own || !d.Online:
			default:
				if _, seen := ask[h]; !seen {
					relays = append(relays, h)
				}
				ask[h] = append(ask[h], o)
			}
		}
	}
	// A relay may hold a copy the placement never listed (one that landed
	// as its index was superseded): each online friend's device says
	// which of our blobs it holds, and those that are old indexes to
	// prune are asked for too.
	prunableName := map[archive.BlobName]oldIndex{}
	for _, o := range todo {
		prunableName[o.Name] = o
	}
	for _, d := range in.Devices {
		if d.Own || !d.Online || d.ID.Equal(self) {
			continue
		}
		names, err := ar.namesAt(ctx, d.ID)
		if err != nil {
			continue // asked again next pass
		}
		for _, n := range names {
			o, ok := prunableName[n]
			if !ok || slices.ContainsFunc(ask[d.ID], func(x oldIndex) bool { return x.Name == n }) {
				continue
			}
			if _, seen := ask[d.ID]; !seen {
				relays = append(relays, d.ID)
			}
			ask[d.ID] = append(ask[d.ID], o)
		}
	}
	var errs []error
	for _, r := range relays {
		for batch := range slices.Chunk(ask[r], maxArDelete) {
			if ctx.Err() != nil {
				return done, errors.Join(errs...)
			}
			names := make([]archive.BlobName, len(batch))
			for i, o := range batch {
				names[i] = o.Name
			}
			if err := ar.deleteAt(ctx, r, names); err != nil {
				errs = append(errs, fmt.Errorf("deleting superseded indexes on relay %s: %w", r.Short(), err))
				break // one failure per relay and pass
			}
			for _, o := range batch {
				done = append(done, holding{Blob: o.Name, Size: o.Size, Device: r})
			}
			ar.a.log.Info("a relay deleted superseded indexes", "device", r.Short(), "blobs", len(batch))
		}
	}
	return done, errors.Join(errs...)
}

// namesAt asks friend device d for the names of the blobs it holds for
// this user.
func (ar *archiver) namesAt(ctx context.Context, d seed.DevicePublic) ([]archive.BlobName, error) {
	ans, _, err := ar.ask(ctx, d, arFrame{Type: arNames, Bits: 1}, nil, nil)
	if err != nil {
		return nil, err
	}
	if ans.Type != arNameIs {
		return nil, fmt.Errorf("%s answered %#02x to names", d.Short(), ans.Type)
	}
	return ans.Names, nil
}
