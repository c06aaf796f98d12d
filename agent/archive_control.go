package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kith-project/kith/archive"
	"github.com/kith-project/kith/conversation"
	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/seed"
)

// The local API of archives ("kith archive", control.ArchiveBackend).

var _ control.ArchiveBackend = controlAPI{}

func (c controlAPI) ArchiveStatus(context.Context) (control.ArchiveStatus, error) {
	in := c.a.archives.planInput()
	out := control.ArchiveStatus{Blobs: len(in.Blobs), MinReplicas: in.MinReplicas, UnderReplicated: c.a.archives.underReplicated(in)}
	for _, b := range in.Blobs {
		out.Bytes += b.Size
	}
	return out, nil
}

func (c controlAPI) ArchiveList(context.Context) ([]control.ArchiveBlob, error) {
	out := []control.ArchiveBlob{}
	for _, p := range c.a.archives.state.placements() {
		h := p.Holders
		if h == nil {
			h = []seed.DevicePublic{}
		}
		out = append(out, control.ArchiveBlob{Blob: p.Name.String(), Bytes: p.Size, Holders: h})
	}
	return out, nil
}

func (c controlAPI) ArchiveNow(ctx context.Context) (control.ArchiveNowResult, error) {
	ids, err := c.a.archives.archiveNow(ctx)
	out := control.ArchiveNowResult{Archived: []string{}}
	for _, id := range ids {
		out.Archived = append(out.Archived, id.String())
	}
	if err != nil && len(ids) == 0 {
		return out, err
	}
	return out, nil
}

func (c controlAPI) ArchiveGet(ctx context.Context, s string) (control.ArchiveGetResult, error) {
	n, err := archive.ParseBlobName(strings.TrimSpace(s))
	if err != nil {
		return control.ArchiveGetResult{}, &control.Error{Kind: control.KindBadInput, Message: fmt.Sprintf("%q is not a blob name (64 hexadecimal characters)", clipString(s, 80))}
	}
	data, err := c.a.archives.getBlob(ctx, n, nil)
	if err != nil {
		return control.ArchiveGetResult{}, err
	}
	return control.ArchiveGetResult{Data: data}, nil
}

func (c controlAPI) ArchiveQuota(_ context.Context, req control.ArchiveQuotaRequest) (control.ArchiveQuotaResult, error) {
	ar := c.a.archives
	if req.QuotaBytes != nil {
		if *req.QuotaBytes < 0 {
			return control.ArchiveQuotaResult{}, &control.Error{Kind: control.KindBadInput, Message: "a quota is a size of 0 or more"}
		}
		if err := c.a.st.Put(store.BucketArchive, quotaKey, *req.QuotaBytes); err != nil {
			return control.ArchiveQuotaResult{}, err
		}
		ar.mu.Lock()
		ar.quota = *req.QuotaBytes
		ar.mu.Unlock()
	}
	ar.mu.Lock()
	out := control.ArchiveQuotaResult{QuotaBytes: ar.quota}
	ar.mu.Unlock()
	for _, in := range ar.blobs.List() {
		if !in.Owner.Equal(c.a.dev.Cert.User) {
			out.UsedBytes += in.Size
		}
	}
	return out, nil
}

// getBlob returns blob n from this device's folder, or from a holder.
func (ar *archiver) getBlob(ctx context.Context, n archive.BlobName, progress func(int)) ([]byte, error) {
	if ar.blobs.Has(n) {
		if b, err := ar.blobs.Get(n); err == nil {
			if progress != nil {
				progress(len(b))
			}
			return b, nil
		} else {
			ar.a.log.Warn("a damaged blob here; fetching it from a holder", "blob", n.Short(), "err", err)
		}
	}
	holders := ar.state.holdersOf(n)
	if len(holders) == 0 {
		return nil, &control.Error{Kind: control.KindNotFound, Message: fmt.Sprintf("no device is known to hold blob %s", n.Short())}
	}
	online := ar.a.onlineSet()
	var errs []error
	for pass := 0; pass < 2; pass++ {
		for _, d := range holders {
			if d.Equal(ar.a.dev.Cert.Device) || (pass == 0) != online[d] {
				continue
			}
			b, err := ar.fetchFrom(ctx, d, n, progress)
			if err == nil {
				return b, nil
			}
			errs = append(errs, err)
		}
	}
	return nil, fmt.Errorf("fetching blob %s: %w", n.Short(), errors.Join(errs...))
}

// ownDeviceFor returns the own device whose archive recipient is r.
func (ar *archiver) ownDeviceFor(r seed.ArchiveRecipient) (seed.DevicePublic, bool) {
	for _, c := range (directory{ar.a}).Certs(ar.a.dev.Cert.User) {
		if c.Archive.Equal(r) && !c.Device.Equal(ar.a.dev.Cert.Device) {
			return c.Device, true
		}
	}
	return seed.DevicePublic{}, false
}

// readArchived fetches, opens and decodes archived conversation id: blobs
// from any holder; the outer layer peeled here or by the own device it is
// sealed to, the inner layer opened here or by its own device, over the
// authenticated channel.
func (ar *archiver) readArchived(ctx context.Context, id conversation.ID, progress func(int)) (conversation.View, error) {
	e, ok := ar.state.entryOf(id)
	if !ok {
		return conversation.View{}, &control.Error{Kind: control.KindNotFound, Message: "no such conversation on this device"}
	}
	self := ar.a.dev.Archive.Recipient()
	parts := make([]archive.Part, 0, len(e.Blobs))
	for _, ref := range e.Blobs {
		blob, err := ar.getBlob(ctx, ref.Name, progress)
		if err != nil {
			return conversation.View{}, err
		}
		var inner []byte
		if ref.Outer.Equal(self) {
			inner, err = archive.PeelOuter(blob, ar.a.dev.Archive)
		} else if d, ok := ar.ownDeviceFor(ref.Outer); ok {
			inner, err = ar.peelAt(ctx, d, blob)
		} else {
			err = errors.New("the outer layer is sealed to a key no own device holds (the recovery key: the seed phrase opens it)")
		}
		if err != nil {
			return conversation.View{}, fmt.Errorf("peeling blob %s: %w", ref.Name.Short(), err)
		}
		var part archive.Part
		if ref.Inner.Equal(self) {
			part, err = archive.OpenInner(inner, ar.a.dev.Archive)
		} else if d, ok := ar.ownDeviceFor(ref.Inner); ok {
			part, err = ar.openAt(ctx, d, inner)
		} else {
			err = errors.New("the inner layer is sealed to a key no own device holds")
		}
		if err != nil {
			return conversation.View{}, fmt.Errorf("opening blob %s: %w", ref.Name.Short(), err)
		}
		parts = append(parts, part)
	}
	recs, err := archive.Assemble(parts)
	if err != nil {
		return conversation.View{}, err
	}
	for _, r := range recs {
		if r.Conversation == id.String() {
			v, err := conversation.ParseExport(r.Data)
			if err != nil {
				return conversation.View{}, err
			}
			if v.ID != id {
				return conversation.View{}, fmt.Errorf("the archive's record of %s holds another conversation", id.String()[:12])
			}
			v.Status = StatusArchived
			return v, nil
		}
	}
	return conversation.View{}, fmt.Errorf("the archive does not hold conversation %s", id.String()[:12])
}

// StatusArchived is the status of an archived conversation in kith conv
// list and show.
const StatusArchived = "archived"

// archivedSummaries lists the archived conversations not in list, for
// kith conv list: their IDs and status from the placement (their topics
// and members are sealed in the archive).
func (a *Agent) archivedSummaries(list []conversation.Summary) []control.ConvSummary {
	out := []control.ConvSummary{}
	for _, id := range a.archives.state.archivedIDs() {
		if slices.ContainsFunc(list, func(s conversation.Summary) bool { return s.ID == id }) {
			continue
		}
		out = append(out, control.ConvSummary{ConversationID: id.String(), Status: StatusArchived, Members: []seed.UserPublic{}})
	}
	return out
}
