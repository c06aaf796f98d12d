package agent

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/kith-project/kith/archive"
)

// restoreLab is a reader (device 0) and two own devices holding an
// archive's blobs (devices 1 and 2), paired over real UDP on loopback;
// the archive is sealed inside to the reader and outside to device 1.
type restoreLab struct {
	reader *testAgent
	entry  archive.Entry
	bytes  int64
}

// newRestoreLab seals size bytes of incompressible history (1 MiB
// records, 4 MiB blobs) and gives every blob to both holders.
func newRestoreLab(tb testing.TB, size int64) *restoreLab {
	tb.Helper()
	phrase := newPhrase(tb)
	a := startAgent(tb, phrase, 0, "reader", "127.0.0.2")
	h1 := startAgent(tb, phrase, 1, "holder-1", "127.0.0.3")
	h2 := startAgent(tb, phrase, 2, "holder-2", "127.0.0.4")
	pairAgents(tb, a, h1)
	pairAgents(tb, a, h2)
	waitFor(tb, "the holders online", func() bool {
		on := a.onlineSet()
		return on[h1.dev.Cert.Device] && on[h2.dev.Cert.Device]
	})
	r := rand.New(rand.NewPCG(1, 2))
	var recs []archive.Record
	for i := int64(0); i*(1<<20) < size; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 8 {
			v := r.Uint64()
			for k := 0; k < 8; k++ {
				b[j+k] = byte(v >> (8 * k))
			}
		}
		recs = append(recs, archive.Record{Conversation: "c" + strconv.FormatInt(i, 10), Data: b})
	}
	user := a.dev.Cert.User
	to := archive.Recipients{Inner: a.dev.Cert.Archive, Outer: h1.dev.Cert.Archive}
	var place archivePlace
	sealed, err := archive.SealTo(context.Background(), recs, to, &archive.Options{Compression: archive.CompressNone}, func(_ context.Context, b archive.Blob) error {
		for _, h := range []*testAgent{h1, h2} {
			if err := h.archives.blobs.Put(user, b.Name, b.Data); err != nil {
				return err
			}
			place.Hold = append(place.Hold, holding{Blob: b.Name, Size: int64(len(b.Data)), Device: h.dev.Cert.Device})
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	e := sealed.Entry()
	place.Archive = &e
	if err := a.archives.applyPlace(place); err != nil {
		tb.Fatal(err)
	}
	var n int64
	for _, r := range recs {
		n += int64(len(r.Data))
	}
	return &restoreLab{reader: a, entry: e, bytes: n}
}

// restore fetches and opens the whole archive on the reader.
func (l *restoreLab) restore(tb testing.TB) {
	recs, err := l.reader.archives.openEntry(context.Background(), l.entry, nil)
	if err != nil {
		tb.Fatal(err)
	}
	var n int64
	for _, r := range recs {
		n += int64(len(r.Data))
	}
	if n != l.bytes {
		tb.Fatalf("restored %d bytes, want %d", n, l.bytes)
	}
}

// TestArchiveRestoreTwoReplicas: a reader that holds no blob restores an
// archive from two own devices, peeled by the outer recipient and opened
// here, every byte back.
func TestArchiveRestoreTwoReplicas(t *testing.T) {
	l := newRestoreLab(t, 9<<20)
	l.restore(t)
}

// BenchmarkArchiveRestore is the restore throughput of a history from two
// replicas over loopback: every blob fetched (half of them peeled by name
// on the outer recipient, half fetched from the other holder and peeled
// there), the inner layers opened here, reassembled. The history is
// KITH_BENCH_RESTORE_MIB MiB (default 64; docs/archives.md has a 1 GiB
// run).
func BenchmarkArchiveRestore(b *testing.B) {
	mib := int64(64)
	if s := os.Getenv("KITH_BENCH_RESTORE_MIB"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 1 {
			b.Fatalf("KITH_BENCH_RESTORE_MIB=%q", s)
		}
		mib = v
	}
	l := newRestoreLab(b, mib<<20)
	b.SetBytes(l.bytes)
	b.ResetTimer()
	for range b.N {
		l.restore(b)
	}
}
