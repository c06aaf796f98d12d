package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

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
//
// A copy here that fails its check is removed by the blob store, fetched
// again from another holder and written back: healed.
func (ar *archiver) getBlob(ctx context.Context, n archive.BlobName, progress func(int)) ([]byte, error) {
	return ar.getBlobFrom(ctx, n, 0, progress)
}

// getBlobFrom is getBlob starting with the holder at position start (mod
// their number), so that the blobs of an archive are fetched from all its
// replicas at once.
func (ar *archiver) getBlobFrom(ctx context.Context, n archive.BlobName, start int, progress func(int)) ([]byte, error) {
	heal := false
	if ar.blobs.Has(n) {
		b, err := ar.blobs.Get(n)
		if err == nil {
			if progress != nil {
				progress(len(b))
			}
			return b, nil
		}
		ar.a.log.Warn("a damaged blob here; fetching it from another holder", "blob", n.Short(), "err", err)
		heal = true
	}
	holders := ar.state.holdersOf(n)
	if len(holders) == 0 {
		return nil, &control.Error{Kind: control.KindNotFound, Message: fmt.Sprintf("no device is known to hold blob %s", n.Short())}
	}
	online := ar.a.onlineSet()
	if k := start % len(holders); k > 0 {
		holders = append(holders[k:], holders[:k]...)
	}
	var errs []error
	for pass := 0; pass < 2; pass++ {
		for _, d := range holders {
			if d.Equal(ar.a.dev.Cert.Device) || (pass == 0) != online[d] {
				continue
			}
			b, err := ar.fetchFrom(ctx, d, n, progress)
			if err == nil {
				if heal {
					if err := ar.blobs.Put(ar.a.dev.Cert.User, n, b); err != nil {
						ar.a.log.Warn("healing a damaged blob", "blob", n.Short(), "err", err)
					} else {
						ar.a.log.Info("healed a damaged blob from another holder", "blob", n.Short(), "from", d.Short())
					}
				}
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
	recs, err := ar.openEntry(ctx, e, progress)
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

var _ control.ConvProgressBackend = controlAPI{}

// ConvShowProgress is ConvShow reporting the transfer of an archived
// conversation's blobs.
func (c controlAPI) ConvShowProgress(ctx context.Context, s string, progress func(done, total int64)) (control.ConvView, error) {
	id, err := c.a.resolveConv(s)
	if err != nil {
		return control.ConvView{}, err
	}
	if v, err := c.a.convs.book.Show(id); err == nil {
		return c.a.convView(v), nil
	}
	e, ok := c.a.archives.state.entryOf(id)
	if !ok {
		return c.ConvShow(ctx, s)
	}
	var total, done int64
	for _, b := range e.Blobs {
		total += b.Size
	}
	v, err := c.a.archives.readArchived(ctx, id, func(n int) {
		done += int64(n)
		progress(min(done, total), total)
	})
	if err != nil {
		return control.ConvView{}, err
	}
	return c.a.convView(v), nil
}

// openWorkers bounds the blobs of one archive fetched and opened at once.
const openWorkers = 4

// openEntry fetches and opens every blob of archive e, openWorkers at a
// time, each from a different replica in turn, and returns its records.
// progress, if set, is called (serialized) with the bytes as they arrive.
func (ar *archiver) openEntry(ctx context.Context, e archive.Entry, progress func(int)) ([]archive.Record, error) {
	var mu sync.Mutex
	report := func(n int) {
		if progress != nil {
			mu.Lock()
			progress(n)
			mu.Unlock()
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := make([]archive.Part, len(e.Blobs))
	errs := make([]error, len(e.Blobs))
	sem := make(chan struct{}, openWorkers)
	var wg sync.WaitGroup
	for i, ref := range e.Blobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			parts[i], errs[i] = ar.openBlob(ctx, ref, i, report)
			if errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return archive.Assemble(parts)
}

// openBlob fetches one blob and opens both its layers, here or with the
// own device that holds the other key.
func (ar *archiver) openBlob(ctx context.Context, ref archive.BlobRef, i int, progress func(int)) (archive.Part, error) {
	self := ar.a.dev.Archive.Recipient()
	outerDev, outerOwn := ar.ownDeviceFor(ref.Outer)
	var inner []byte
	// Every other blob whose outer recipient holds it is peeled there by
	// name (only the inner layer travels); the others are fetched from
	// the holders in turn, so that the replicas share the transfer.
	if outerOwn && i%2 == 0 && !ar.blobs.Has(ref.Name) && slices.Contains(ar.state.holdersOf(ref.Name), outerDev) {
		if in, err := ar.peelNameAt(ctx, outerDev, ref.Name, progress); err == nil {
			inner = in
		}
	}
	if inner == nil {
		blob, err := ar.getBlobFrom(ctx, ref.Name, i, progress)
		if err != nil {
			return archive.Part{}, err
		}
		switch {
		case ref.Outer.Equal(self):
			inner, err = archive.PeelOuter(blob, ar.a.dev.Archive)
		case outerOwn:
			inner, err = ar.peelAt(ctx, outerDev, blob)
		default:
			err = errors.New("the outer layer is sealed to a key no own device holds (the recovery key: the seed phrase opens it)")
		}
		if err != nil {
			return archive.Part{}, fmt.Errorf("peeling blob %s: %w", ref.Name.Short(), err)
		}
	}
	var part archive.Part
	var err error
	if ref.Inner.Equal(self) {
		part, err = archive.OpenInner(inner, ar.a.dev.Archive)
	} else if d, ok := ar.ownDeviceFor(ref.Inner); ok {
		part, err = ar.openAt(ctx, d, inner)
	} else {
		err = errors.New("the inner layer is sealed to a key no own device holds")
	}
	if err != nil {
		return archive.Part{}, fmt.Errorf("opening blob %s: %w", ref.Name.Short(), err)
	}
	return part, nil
}
