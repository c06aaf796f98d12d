package control

import (
	"context"
	"errors"
	"os"
	"testing"
)

// archiveFake is a fake with archives.
type archiveFake struct {
	convFake
	quota int64
}

func (f *archiveFake) ArchiveStatus(context.Context) (ArchiveStatus, error) {
	return ArchiveStatus{Blobs: 3, Bytes: 30, MinReplicas: 2, UnderReplicated: 1}, nil
}
func (f *archiveFake) ArchiveList(context.Context) ([]ArchiveBlob, error) {
	return []ArchiveBlob{{Blob: "b1", Bytes: 10}}, nil
}
func (f *archiveFake) ArchiveNow(context.Context) (ArchiveNowResult, error) {
	return ArchiveNowResult{Archived: []string{"c1"}}, nil
}
func (f *archiveFake) ArchiveGet(_ context.Context, blob string) (ArchiveGetResult, error) {
	if blob == "none" {
		return ArchiveGetResult{}, &Error{Kind: KindNotFound, Message: "no such blob"}
	}
	return ArchiveGetResult{Data: []byte("sealed\x00bytes")}, nil
}
func (f *archiveFake) ArchiveQuota(_ context.Context, req ArchiveQuotaRequest) (ArchiveQuotaResult, error) {
	if req.QuotaBytes != nil {
		f.quota = *req.QuotaBytes
	}
	return ArchiveQuotaResult{QuotaBytes: f.quota, UsedBytes: 7}, nil
}
func (f *archiveFake) ArchiveRecover(_ context.Context, req ArchiveRecoverRequest) (ArchiveRecoverResult, error) {
	return ArchiveRecoverResult{Blobs: len(req.Keys)}, nil
}
func (f *archiveFake) ConvShowProgress(_ context.Context, id string, progress func(done, total int64)) (ConvView, error) {
	if id == "none" {
		return ConvView{}, &Error{Kind: KindNotFound, Message: "no such conversation"}
	}
	for _, d := range []int64{5, 10} {
		progress(d, 10)
	}
	if id == "fails" {
		return ConvView{}, errors.New("the holders went away")
	}
	return ConvView{ConversationID: id}, nil
}

func TestArchiveRoutes(t *testing.T) {
	home, err := os.MkdirTemp("", "ka")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(home)
	l, err := Listen(home)
	if err != nil {
		t.Fatal(err)
	}
	b := &archiveFake{convFake: convFake{ended: make(chan error, 1)}, quota: 1 << 30}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, NewHandler(b)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	c := NewClient(home)
	if st, err := c.ArchiveStatus(ctx); err != nil || st.UnderReplicated != 1 || st.MinReplicas != 2 {
		t.Fatalf("ArchiveStatus: %+v %v", st, err)
	}
	if bs, err := c.ArchiveList(ctx); err != nil || len(bs) != 1 || bs[0].Blob != "b1" {
		t.Fatalf("ArchiveList: %+v %v", bs, err)
	}
	if r, err := c.ArchiveNow(ctx); err != nil || len(r.Archived) != 1 {
		t.Fatalf("ArchiveNow: %+v %v", r, err)
	}
	if r, err := c.ArchiveGet(ctx, "b1"); err != nil || string(r.Data) != "sealed\x00bytes" {
		t.Fatalf("ArchiveGet: %q %v", r.Data, err)
	}
	var ce *Error
	if _, err := c.ArchiveGet(ctx, "none"); !errors.As(err, &ce) || ce.Kind != KindNotFound {
		t.Fatalf("ArchiveGet of an unknown blob: %v", err)
	}
	q := int64(5 << 20)
	if r, err := c.ArchiveQuota(ctx, ArchiveQuotaRequest{QuotaBytes: &q}); err != nil || r.QuotaBytes != q || r.UsedBytes != 7 {
		t.Fatalf("ArchiveQuota: %+v %v", r, err)
	}
	if r, err := c.ArchiveQuota(ctx, ArchiveQuotaRequest{}); err != nil || r.QuotaBytes != q {
		t.Fatalf("ArchiveQuota (read): %+v %v", r, err)
	}
	if r, err := c.ArchiveRecover(ctx, ArchiveRecoverRequest{Keys: [][]byte{{1}, {2}}}); err != nil || r.Blobs != 2 {
		t.Fatalf("ArchiveRecover: %+v %v", r, err)
	}
	var seen []int64
	v, err := c.ConvShowProgress(ctx, "c1", func(d, total int64) { seen = append(seen, d) })
	if err != nil || v.ConversationID != "c1" || len(seen) != 2 || seen[1] != 10 {
		t.Fatalf("ConvShowProgress: %+v %v, progress %v", v, err, seen)
	}
	if _, err := c.ConvShowProgress(ctx, "none", nil); !errors.As(err, &ce) || ce.Kind != KindNotFound {
		t.Fatalf("ConvShowProgress of an unknown conversation: %v", err)
	}
	// A failure after progress began still arrives as an error.
	if _, err := c.ConvShowProgress(ctx, "fails", nil); err == nil || err.Error() != "the holders went away" {
		t.Fatalf("ConvShowProgress that fails midway: %v", err)
	}
}
