package archive

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/kith-project/kith/seed"
)

func TestSealOpenRoundTrip(t *testing.T) {
	k := newTestKeys(t)
	ctx := context.Background()
	random := make([]byte, 300_000)
	rand.NewChaCha8([32]byte{1}).Read(random)
	cases := []struct {
		name    string
		records []Record
		opts    *Options
		parts   int
	}{
		{"empty", nil, nil, 1},
		{"one small", history(1, 100), nil, 1},
		{"many across parts", history(40, 20_000), &Options{ChunkSize: 64 << 10}, 13},
		{"stored", history(3, 50_000), &Options{ChunkSize: 32 << 10, Compression: CompressNone}, 5},
		{"best", history(3, 50_000), &Options{Compression: CompressBest}, 1},
		{"random does not compress", []Record{{Conversation: "r", Data: random}}, &Options{ChunkSize: 100_000}, 4},
		{"one worker", history(10, 10_000), &Options{ChunkSize: 10_000, Workers: 1}, 11},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Seal(ctx, c.records, k.to(), c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Blobs) != c.parts {
				t.Fatalf("%d blobs, want %d", len(s.Blobs), c.parts)
			}
			for _, b := range s.Blobs {
				if NameOf(b.Data) != b.Name {
					t.Fatal("a blob's name is not the SHA-256 of its bytes")
				}
				if len(b.Data) > MaxBlobSize {
					t.Fatalf("a blob of %d bytes", len(b.Data))
				}
			}
			// Any order of the blobs opens.
			blobs := append([]Blob(nil), s.Blobs...)
			rand.New(rand.NewPCG(3, 4)).Shuffle(len(blobs), func(i, j int) { blobs[i], blobs[j] = blobs[j], blobs[i] })
			got, err := Open(ctx, blobs, k.archB, k.archA, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, c.records)
		})
	}
}

func TestSealCompresses(t *testing.T) {
	k := newTestKeys(t)
	recs := history(1, 1<<20)
	s, err := Seal(context.Background(), recs, k.to(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.Blobs[0].Data); n > 1<<18 {
		t.Fatalf("1 MiB of text sealed to %d bytes: not compressed", n)
	}
}

// TestCooperativeOpen is the two-device path: the outer holder peels, the
// inner holder opens.
func TestCooperativeOpen(t *testing.T) {
	k := newTestKeys(t)
	recs := history(5, 30_000)
	s, err := Seal(context.Background(), recs, k.to(), &Options{ChunkSize: 40_000})
	if err != nil {
		t.Fatal(err)
	}
	var parts []Part
	for _, b := range s.Blobs {
		inner, err := PeelOuter(b.Data, k.archB) // on device B
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(inner, []byte("conversation")) {
			t.Fatal("the inner layer holds plaintext")
		}
		p, err := OpenInner(inner, k.archA) // on device A
		if err != nil {
			t.Fatal(err)
		}
		if p.Archive != s.ID || p.Count != len(s.Blobs) {
			t.Fatalf("part %+v of archive %s", p, s.ID)
		}
		parts = append(parts, p)
	}
	got, err := Assemble(parts)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, recs)
}

// TestOneKeyOpensNothing: neither device's key alone, nor the recovery key
// alone, gets at the plaintext.
func TestOneKeyOpensNothing(t *testing.T) {
	k := newTestKeys(t)
	s, err := Seal(context.Background(), history(1, 1000), k.to(), nil)
	if err != nil {
		t.Fatal(err)
	}
	blob := s.Blobs[0].Data
	// Inner key only: the outer layer does not open.
	if _, err := PeelOuter(blob, k.archA); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("peeling with the inner key: %v, want ErrWrongKey", err)
	}
	// Outer key only: it peels, but the inner layer stays shut.
	inner, err := PeelOuter(blob, k.archB)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenInner(inner, k.archB); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("opening the inner layer with the outer key: %v, want ErrWrongKey", err)
	}
	if _, err := OpenInner(inner, k.recv); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("opening the inner layer with the recovery key: %v, want ErrWrongKey", err)
	}
	// Open with one key twice, or the keys swapped.
	for _, pair := range []struct {
		name         string
		outer, inner seed.ArchiveKey
	}{{"A twice", k.archA, k.archA}, {"B twice", k.archB, k.archB}, {"swapped", k.archA, k.archB}, {"recovery", k.recv, k.archA}} {
		if _, err := Open(context.Background(), s.Blobs, pair.outer, pair.inner, nil); !errors.Is(err, ErrWrongKey) {
			t.Errorf("Open with keys %s: %v, want ErrWrongKey", pair.name, err)
		}
	}
}

func TestSingleDeviceUsesRecoveryKey(t *testing.T) {
	k := newTestKeys(t)
	recs := history(2, 5000)
	to := Recipients{Inner: k.archA.Recipient(), Outer: k.recv.Recipient()}
	s, err := Seal(context.Background(), recs, to, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(context.Background(), s.Blobs, k.recv, k.archA, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, recs)
	if _, err := Open(context.Background(), s.Blobs, k.archA, k.archA, nil); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("the device alone: %v, want ErrWrongKey", err)
	}
}

func TestSealRefusesOneKey(t *testing.T) {
	k := newTestKeys(t)
	for _, to := range []Recipients{
		{Inner: k.archA.Recipient(), Outer: k.archA.Recipient()},
		{Inner: k.archA.Recipient()},
		{},
	} {
		if _, err := Seal(context.Background(), nil, to, nil); err == nil {
			t.Errorf("sealing to %+v succeeded", to)
		}
	}
	if _, err := Seal(context.Background(), nil, k.to(), &Options{ChunkSize: MaxChunkSize + 1}); err == nil {
		t.Error("a chunk size above MaxChunkSize was accepted")
	}
}

// TestDamageDetected: a flipped bit anywhere in either layer, a truncated
// blob, a swapped blob, a blob of another archive: each a typed error.
func TestDamageDetected(t *testing.T) {
	k := newTestKeys(t)
	ctx := context.Background()
	s, err := Seal(ctx, history(4, 20_000), k.to(), &Options{ChunkSize: 30_000})
	if err != nil {
		t.Fatal(err)
	}
	other, err := Seal(ctx, history(4, 20_000), k.to(), &Options{ChunkSize: 30_000})
	if err != nil {
		t.Fatal(err)
	}
	blob := s.Blobs[0].Data
	inner, err := PeelOuter(blob, k.archB)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("outer bit flips", func(t *testing.T) {
		for _, pos := range positions(len(blob)) {
			bad := flip(blob, pos)
			// Under its name, the blob fails the name check.
			if err := CheckBlob(Blob{Name: s.Blobs[0].Name, Data: bad}); !errors.Is(err, ErrNameMismatch) {
				t.Fatalf("bit flipped at %d: CheckBlob %v", pos, err)
			}
			// Without the name check, age's authentication catches it.
			_, err := PeelOuter(bad, k.archB)
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongKey) {
				t.Fatalf("bit flipped at %d of %d: PeelOuter %v, want ErrCorrupt (or ErrWrongKey in the header)", pos, len(blob), err)
			}
		}
	})
	t.Run("inner bit flips", func(t *testing.T) {
		for _, pos := range positions(len(inner)) {
			_, err := OpenInner(flip(inner, pos), k.archA)
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongKey) {
				t.Fatalf("bit flipped at %d of %d: OpenInner %v", pos, len(inner), err)
			}
		}
		// Past the header (the first 200 bytes) it is always ErrCorrupt.
		if _, err := OpenInner(flip(inner, len(inner)-20), k.archA); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a payload bit flipped: %v, want ErrCorrupt", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		for _, n := range []int{len(blob) - 1, len(blob) - 17, len(blob) / 2, 300, 10, 0} {
			if _, err := PeelOuter(blob[:n], k.archB); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("cut to %d of %d bytes: %v, want ErrCorrupt", n, len(blob), err)
			}
		}
		for _, n := range []int{len(inner) - 1, len(inner) / 2} {
			if _, err := OpenInner(inner[:n], k.archA); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("inner cut to %d of %d bytes: %v, want ErrCorrupt", n, len(inner), err)
			}
		}
	})
	t.Run("swapped", func(t *testing.T) {
		blobs := append([]Blob(nil), s.Blobs...)
		blobs[1].Data = s.Blobs[2].Data
		if _, err := Open(ctx, blobs, k.archB, k.archA, nil); !errors.Is(err, ErrNameMismatch) {
			t.Fatalf("a blob swapped under another's name: %v, want ErrNameMismatch", err)
		}
	})
	t.Run("other archive", func(t *testing.T) {
		blobs := append([]Blob(nil), s.Blobs...)
		blobs[1] = other.Blobs[1]
		if _, err := Open(ctx, blobs, k.archB, k.archA, nil); !errors.Is(err, ErrWrongArchive) {
			t.Fatalf("a part of another archive: %v, want ErrWrongArchive", err)
		}
	})
	t.Run("missing and repeated parts", func(t *testing.T) {
		if _, err := Open(ctx, s.Blobs[1:], k.archB, k.archA, nil); !errors.Is(err, ErrWrongArchive) {
			t.Fatalf("a part missing: %v, want ErrWrongArchive", err)
		}
		blobs := append([]Blob(nil), s.Blobs...)
		blobs[1] = blobs[0]
		if _, err := Open(ctx, blobs, k.archB, k.archA, nil); !errors.Is(err, ErrWrongArchive) {
			t.Fatalf("a part twice: %v, want ErrWrongArchive", err)
		}
	})
}

func TestOpenCancelled(t *testing.T) {
	k := newTestKeys(t)
	s, err := Seal(context.Background(), history(4, 20_000), k.to(), &Options{ChunkSize: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open(ctx, s.Blobs, k.archB, k.archA, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with a cancelled context: %v", err)
	}
	if _, err := Seal(ctx, history(4, 20_000), k.to(), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Seal with a cancelled context: %v", err)
	}
}

// positions returns bit positions to flip: every byte of the first 300
// (age's header), then a spread over the rest.
func positions(n int) []int {
	var out []int
	for i := 0; i < n; i++ {
		if i < 300 || i%97 == 0 || i >= n-40 {
			out = append(out, i)
		}
	}
	return out
}

func flip(b []byte, pos int) []byte {
	c := bytes.Clone(b)
	c[pos] ^= 0x10
	return c
}

func TestRecipientsFor(t *testing.T) {
	k := newTestKeys(t)
	a, b, r := k.archA.Recipient(), k.archB.Recipient(), k.recv.Recipient()
	if got := RecipientsFor(a, nil, r, 0); got != (Recipients{Inner: a, Outer: r}) {
		t.Fatalf("alone: %+v", got)
	}
	if got := RecipientsFor(a, []seed.ArchiveRecipient{a}, r, 3); got != (Recipients{Inner: a, Outer: r}) {
		t.Fatalf("alone, self listed: %+v", got)
	}
	c := seed.ArchiveRecipient{9}
	seen := map[seed.ArchiveRecipient]int{}
	for n := range uint64(4) {
		got := RecipientsFor(a, []seed.ArchiveRecipient{b, a, c}, r, n)
		if got.Inner != a || got.Outer == a || got.Outer == r {
			t.Fatalf("archive %d: %+v", n, got)
		}
		seen[got.Outer]++
	}
	if seen[b] != 2 || seen[c] != 2 {
		t.Fatalf("outer layers not spread: %v", seen)
	}
}
