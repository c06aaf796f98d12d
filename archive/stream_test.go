package archive

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/kith-project/kith/seed"
)

// feed gives b to a fresh Unpacker in pieces cut at random, and returns the
// records it emits.
func feed(r *rand.Rand, b []byte) ([]Record, error) {
	var u Unpacker
	var out []Record
	emit := func(rec Record) error { out = append(out, rec); return nil }
	for len(b) > 0 {
		n := min(len(b), 1+r.IntN(40))
		if r.IntN(4) == 0 {
			n = min(len(b), r.IntN(5000))
		}
		if err := u.Write(b[:n], emit); err != nil {
			return nil, err
		}
		b = b[n:]
	}
	return out, u.Close()
}

func TestUnpackerMatchesUnpack(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	packs := [][]byte{must(Pack(nil)), must(Pack(history(1, 0))), must(Pack(history(5, 3000)))}
	good := packs[2]
	packs = append(packs, good[:len(good)-1], append(append([]byte(nil), good...), 1), good[:5], nil)
	for i, b := range packs {
		for range 20 {
			want, werr := Unpack(b)
			got, gerr := feed(r, b)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("pack %d: Unpack %v, Unpacker %v", i, werr, gerr)
			}
			if werr == nil {
				sameRecords(t, got, want)
			} else if !errors.Is(gerr, ErrCorrupt) {
				t.Fatalf("pack %d: %v, want ErrCorrupt", i, gerr)
			}
		}
	}
}

func TestUnpackerBounds(t *testing.T) {
	b := must(Pack([]Record{{Conversation: "big", Data: make([]byte, 5000)}}))
	u := Unpacker{MaxRecord: 4999}
	if err := u.Write(b, func(Record) error { return nil }); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a record past MaxRecord: %v", err)
	}
	if err := u.Close(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("the error does not stick: %v", err)
	}
	stop := errors.New("stop")
	var v Unpacker
	if err := v.Write(must(Pack(history(3, 10))), func(Record) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("emit's error: %v", err)
	}
}

func storeOf(s *Sealed) Fetcher {
	m := map[BlobName][]byte{}
	for _, b := range s.Blobs {
		m[b.Name] = b.Data
	}
	return func(_ context.Context, n BlobName) ([]byte, error) {
		b, ok := m[n]
		if !ok {
			return nil, fmt.Errorf("no blob %s", n.Short())
		}
		return b, nil
	}
}

func TestOpenStream(t *testing.T) {
	t.Parallel()
	k := newTestKeys(t)
	ctx := context.Background()
	keys := []seed.ArchiveKey{k.archA, k.archB}
	for _, c := range []struct {
		recs []Record
		opts *Options
	}{
		{history(30, 7000), &Options{ChunkSize: 5000, Workers: 3}},
		{history(2, 100_000), &Options{ChunkSize: 9999, Compression: CompressNone}},
		{nil, nil},
	} {
		s, err := Seal(ctx, c.recs, k.to(), c.opts)
		if err != nil {
			t.Fatal(err)
		}
		var got []Record
		if err := OpenStream(ctx, s.Entry(), storeOf(s), keys, c.opts, func(r Record) error { got = append(got, r); return nil }); err != nil {
			t.Fatal(err)
		}
		sameRecords(t, got, c.recs)
	}

	s, err := Seal(ctx, history(6, 7000), k.to(), &Options{ChunkSize: 8000})
	if err != nil {
		t.Fatal(err)
	}
	none := func(Record) error { return nil }
	// One key alone.
	if err := OpenStream(ctx, s.Entry(), storeOf(s), keys[:1], nil, none); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("one key: %v", err)
	}
	// The index lists two parts in the wrong order.
	e := s.Entry()
	e.Blobs[1], e.Blobs[2] = e.Blobs[2], e.Blobs[1]
	if err := OpenStream(ctx, e, storeOf(s), keys, nil, none); !errors.Is(err, ErrWrongArchive) {
		t.Fatalf("parts out of order: %v", err)
	}
	// A holder hands over another blob than the one asked for.
	swap := func(_ context.Context, n BlobName) ([]byte, error) { return s.Blobs[0].Data, nil }
	if err := OpenStream(ctx, s.Entry(), swap, keys, nil, none); !errors.Is(err, ErrNameMismatch) {
		t.Fatalf("a swapped blob: %v", err)
	}
	// The index's entry for another archive of the same size.
	other, err := Seal(ctx, history(6, 7000), k.to(), &Options{ChunkSize: 8000})
	if err != nil {
		t.Fatal(err)
	}
	e = s.Entry()
	e.ID = other.ID
	if err := OpenStream(ctx, e, storeOf(s), keys, nil, none); !errors.Is(err, ErrWrongArchive) {
		t.Fatalf("another archive's ID: %v", err)
	}
	// The last part missing from the index.
	e = s.Entry()
	e.Blobs = e.Blobs[:len(e.Blobs)-1]
	if err := OpenStream(ctx, e, storeOf(s), keys, nil, none); !errors.Is(err, ErrWrongArchive) {
		t.Fatalf("a part missing: %v", err)
	}
}
