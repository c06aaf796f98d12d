package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/kith-project/kith/archive"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// Placement sync between own devices, beside the cluster. A two-device
// cluster that lost one device has no quorum, so the cluster cannot tell a
// device restored in its place what is archived, nor the survivor that the
// restored device's folder is empty. Each pass therefore also asks every
// online own device for its placement (frame place of stream 0x08) and
// merges it: archives and the newest index are added; each device is
// believed about its own holdings (what it lists as held by itself is
// added, and what it does not list is dropped), and the others' holdings
// it reports are added.

// syncPlacement merges the placement of every online own device.
func (ar *archiver) syncPlacement(ctx context.Context) error {
	a := ar.a
	online := a.onlineSet()
	var errs []error
	for _, p := range a.book.reachable() {
		if p.Kind != roster.KindOwn || p.DeviceID.Equal(a.dev.Cert.Device) || !online[p.DeviceID] || a.book.revoked(p.DeviceID) {
			continue
		}
		if err := ar.syncFrom(ctx, p.DeviceID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// syncFrom merges own device d's placement.
func (ar *archiver) syncFrom(ctx context.Context, d seed.DevicePublic) error {
	ans, data, err := ar.ask(ctx, d, arFrame{Type: arPlace}, nil, nil)
	if err != nil {
		return fmt.Errorf("asking %s for its placement: %w", d.Short(), err)
	}
	if ans.Type != arData {
		return fmt.Errorf("%s answered %#02x to place", d.Short(), ans.Type)
	}
	var doc archiveDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s's placement: %w", d.Short(), err)
	}
	if len(doc.Archives) > maxArchiveEntries || len(doc.Holders) > maxPlaceEntries || len(doc.Old) > maxOldIndexes {
		return fmt.Errorf("%s's placement is too large", d.Short())
	}
	for i := range doc.Archives {
		if err := ar.applyPlace(archivePlace{Archive: &doc.Archives[i]}); err != nil {
			return err
		}
	}
	// Superseded indexes: those it knows are added (it may be the only
	// one that saw them superseded), and it is believed about its own
	// copies of those both know.
	p := archivePlace{Index: doc.Index, retired: doc.Old}
	theirsOld := map[archive.BlobName]bool{}
	for _, o := range doc.Old {
		theirsOld[o.Name] = slices.Contains(o.Holders, d)
	}
	for _, o := range ar.state.doc().Old {
		if held, known := theirsOld[o.Name]; known && !held && slices.Contains(o.Holders, d) {
			p.Pruned = append(p.Pruned, holding{Blob: o.Name, Size: o.Size, Device: d})
		}
	}
	theirs := map[[32]byte]bool{}
	for _, h := range doc.Holders {
		if h.Device.Equal(ar.a.dev.Cert.Device) {
			continue // this device knows its own holdings
		}
		if h.Device.Equal(d) {
			theirs[h.Blob] = true
		}
		p.Hold = append(p.Hold, h)
	}
	for _, pl := range ar.state.placements() {
		for _, h := range pl.Holders {
			if h.Equal(d) && !theirs[pl.Name] {
				p.Drop = append(p.Drop, holding{Blob: pl.Name, Size: pl.Size, Device: d})
			}
		}
	}
	return ar.applyPlace(p)
}

// placementDoc is the placement this device tells an own device: what it
// knows, with its own holdings as its blob folder has them.
func (ar *archiver) placementDoc() archiveDoc {
	self := ar.a.dev.Cert.Device
	d := ar.state.doc()
	hs := d.Holders[:0:0]
	for _, h := range d.Holders {
		if !h.Device.Equal(self) {
			hs = append(hs, h)
		}
	}
	for _, p := range ar.state.placements() {
		if ar.blobs.Has(p.Name) {
			hs = append(hs, holding{Blob: p.Name, Size: p.Size, Device: self})
		}
	}
	d.Holders = hs
	for i := range d.Old {
		o := &d.Old[i]
		o.Holders = slices.DeleteFunc(o.Holders, func(h seed.DevicePublic) bool { return h.Equal(self) })
		if ar.blobs.Has(o.Name) {
			o.Holders = append(o.Holders, self)
		}
	}
	return d
}
