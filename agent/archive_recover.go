package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/kith-project/kith/archive"
	"github.com/kith-project/kith/conversation"
	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// Recovery after losing every device ("kith archive recover"). The user
// has only the seed phrase. This device, restored from it, paired again
// with a friend whose device was an archive relay (archive_repair.go's
// offsite copies). The CLI derives the recovery key and the archive key of
// each device index, and the device keys that may have signed an index,
// and hands them to the agent for this one request. The agent:
//
//  1. compares, with every online friend's device, the Merkle root of the
//     blobs held for this user there with its own; where they differ it
//     asks for the names and fetches what it lacks (frames root, names,
//     get of stream 0x08), each blob checked against its name;
//  2. opens every blob it can as a sealed index with the derived keys
//     (archive.OpenIndexWith, trusting only the derived device keys) and
//     keeps the newest generation;
//  3. opens each archive the index lists (archive.OpenWith) and decodes
//     the conversations;
//  4. takes the friends back from the index into the roster, adopts the
//     placement (the friend's relay and now this device hold the blobs),
//     and returns the history.
//
// The keys are cleared when the request ends; nothing derived from the
// phrase is stored.

// maxRecoverKeys bounds the keys one request carries.
const maxRecoverKeys = 1024

func (c controlAPI) ArchiveRecover(ctx context.Context, req control.ArchiveRecoverRequest) (control.ArchiveRecoverResult, error) {
	if len(req.Keys) == 0 || len(req.Keys) > maxRecoverKeys || len(req.Devices) > maxRecoverKeys {
		return control.ArchiveRecoverResult{}, &control.Error{Kind: control.KindBadInput, Message: "a recovery needs between 1 and 1024 keys"}
	}
	keys := make([]seed.ArchiveKey, 0, len(req.Keys))
	defer func() {
		for _, k := range req.Keys {
			clear(k)
		}
	}()
	for _, b := range req.Keys {
		k, err := seed.ArchiveKeyFromBytes(b)
		if err != nil {
			return control.ArchiveRecoverResult{}, &control.Error{Kind: control.KindBadInput, Message: "a key that is not an archive key"}
		}
		keys = append(keys, k)
	}
	return c.a.archives.recover(ctx, keys, req.Devices)
}

// recover is ArchiveRecover's work.
func (ar *archiver) recover(ctx context.Context, keys []seed.ArchiveKey, trusted []seed.DevicePublic) (control.ArchiveRecoverResult, error) {
	a := ar.a
	user := a.dev.Cert.User
	online := a.onlineSet()
	fetched := map[archive.BlobName]seed.DevicePublic{} // blob: the relay it came from
	var errs []error
	for _, p := range a.book.reachable() {
		if p.Kind != roster.KindFriend || !online[p.DeviceID] {
			continue
		}
		if err := ar.pullFrom(ctx, p.DeviceID, fetched); err != nil {
			errs = append(errs, err)
		}
	}
	mine := ar.namesFor(user)
	if len(mine) == 0 {
		return control.ArchiveRecoverResult{}, fmt.Errorf("no friend's device online gave back any blob of this user: pair with a friend who relayed your archives, and keep their device online: %w", errors.Join(errs...))
	}
	var best *archive.Index
	var bestName archive.BlobName
	var older []indexRef // the other indexes found, placed as superseded
	for _, n := range mine {
		b, err := ar.blobs.Get(n)
		if err != nil || len(b) > archive.MaxSealedIndexSize {
			continue
		}
		ix, err := archive.OpenIndexWith(b, keys, archive.Trust{Devices: trusted})
		if err != nil {
			continue
		}
		older = append(older, indexRef{Name: n, Size: int64(len(b)), Generation: ix.Generation})
		if best == nil || ix.Generation > best.Generation {
			best, bestName = ix, n
		}
	}
	if best == nil {
		return control.ArchiveRecoverResult{}, errors.New("none of the blobs given back opens as this user's index with keys from this phrase")
	}
	// The older indexes found go into the placement first, oldest first,
	// so that each is superseded by the next with its holders (here, and
	// the relay it came from) and those older than the newest two are
	// pruned (archive_prune.go). One of the best's generation is not.
	slices.SortFunc(older, func(x, y indexRef) int { return cmp.Compare(x.Generation, y.Generation) })
	for _, ix := range older {
		if ix.Generation >= best.Generation {
			continue
		}
		p := archivePlace{Index: &ix, Hold: []holding{{Blob: ix.Name, Size: ix.Size, Device: a.dev.Cert.Device}}}
		if d, ok := fetched[ix.Name]; ok {
			p.Hold = append(p.Hold, holding{Blob: ix.Name, Size: ix.Size, Device: d})
		}
		if err := ar.place(p); err != nil {
			return control.ArchiveRecoverResult{}, err
		}
	}
	res := control.ArchiveRecoverResult{Generation: best.Generation, Blobs: len(mine), Conversations: []control.ConvView{}, Friends: []string{}}
	self := a.dev.Cert.Device
	place := archivePlace{Index: &indexRef{Name: bestName, Size: int64(blobSize(ar, bestName)), Generation: best.Generation}}
	place.Hold = append(place.Hold, holding{Blob: bestName, Size: place.Index.Size, Device: self})
	if d, ok := fetched[bestName]; ok {
		place.Hold = append(place.Hold, holding{Blob: bestName, Size: place.Index.Size, Device: d})
	}
	for i := range best.Archives {
		e := best.Archives[i]
		var blobs []archive.Blob
		for _, ref := range e.Blobs {
			b, err := ar.blobs.Get(ref.Name)
			if err != nil {
				return res, fmt.Errorf("archive %s: blob %s was not given back: %w", e.ID, ref.Name.Short(), err)
			}
			blobs = append(blobs, archive.Blob{Name: ref.Name, Data: b})
			place.Hold = append(place.Hold, holding{Blob: ref.Name, Size: ref.Size, Device: self})
			if d, ok := fetched[ref.Name]; ok {
				place.Hold = append(place.Hold, holding{Blob: ref.Name, Size: ref.Size, Device: d})
			}
		}
		recs, err := archive.OpenWith(ctx, blobs, keys, nil)
		if err != nil {
			return res, fmt.Errorf("opening archive %s: %w", e.ID, err)
		}
		for _, r := range recs {
			v, err := conversation.ParseExport(r.Data)
			if err != nil {
				return res, fmt.Errorf("archive %s: %w", e.ID, err)
			}
			v.Status = StatusArchived
			res.Conversations = append(res.Conversations, a.convView(v))
		}
		if err := ar.place(archivePlace{Archive: &e}); err != nil {
			return res, err
		}
	}
	if err := ar.place(place); err != nil {
		return res, err
	}
	// Friends back, from the index.
	var friends []indexFriend
	if err := json.Unmarshal(best.Friends, &friends); err != nil {
		return res, fmt.Errorf("the index's friend list: %w", err)
	}
	for _, f := range friends {
		res.Friends = append(res.Friends, f.Friend.UserID.ID())
		if _, ok := a.book.rosterNow().Friend(f.Friend.UserID); ok {
			continue
		}
		for _, d := range f.Devices {
			fr, dv := f.Friend, d
			var locals []Local
			if dv.DeviceID.Equal(self) {
				continue
			}
			if addr := f.addrOf(dv.DeviceID); addr != "" {
				locals = append(locals, Local{DeviceID: dv.DeviceID, Addr: addr})
			}
			if err := a.book.change(roster.Change{Op: roster.OpPair, Device: &dv, Friend: &fr}, locals, nil); err != nil {
				a.log.Warn("taking a friend back from the index", "friend", fr.UserID.Short(), "err", err)
			}
		}
	}
	var own roster.Signed
	if err := json.Unmarshal(best.Roster, &own); err == nil {
		res.OwnDevices = len(own.Certs)
	}
	slices.Sort(res.Friends)
	return res, nil
}

// blobSize is the size of a held blob, 0 if absent.
func blobSize(ar *archiver, n archive.BlobName) int {
	for _, in := range ar.blobs.List() {
		if in.Name == n {
			return int(in.Size)
		}
	}
	return 0
}

// pullFrom fetches from friend device d the blobs it holds for this user
// that this device lacks: one Merkle root first, then the names, then
// each missing blob.
func (ar *archiver) pullFrom(ctx context.Context, d seed.DevicePublic, fetched map[archive.BlobName]seed.DevicePublic) error {
	user := ar.a.dev.Cert.User
	mine := ar.namesFor(user)
	ans, _, err := ar.ask(ctx, d, arFrame{Type: arRoot}, nil, nil)
	if err != nil {
		return fmt.Errorf("asking %s for its root: %w", d.Short(), err)
	}
	if ans.Type == arRootIs && ans.Root == archive.MerkleRoot(mine) {
		names, err := ar.namesAt(ctx, d)
		if err == nil {
			for _, n := range names {
				fetched[n] = d
			}
		}
		return nil // the same blobs already
	}
	names, err := ar.namesAt(ctx, d)
	if err != nil {
		return err
	}
	missing, _ := archive.Diff(mine, names)
	for _, n := range names {
		fetched[n] = d
	}
	for _, n := range missing {
		b, err := ar.fetchFrom(ctx, d, n, nil)
		if err != nil {
			return err
		}
		if err := ar.blobs.Put(user, n, b); err != nil {
			return err
		}
	}
	return nil
}
