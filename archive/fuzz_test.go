package archive

import (
	"bytes"
	"context"
	"testing"

	"github.com/kith-project/kith/seed"
)

func FuzzUnpack(f *testing.F) {
	f.Add(must(Pack(nil)))
	f.Add(must(Pack(history(2, 100))))
	f.Add([]byte("kithpack\x01\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := Unpack(b)
		if err != nil {
			return
		}
		again, err := Pack(recs)
		if err != nil {
			t.Fatalf("Unpack accepted what Pack refuses: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatal("Pack(Unpack(b)) != b")
		}
	})
}

func FuzzParsePart(f *testing.F) {
	id := ArchiveID{1}
	pack := must(Pack(history(2, 3000)))
	f.Add(must(encodePart(id, 0, 1, pack, CompressFast)))
	f.Add(must(encodePart(id, 2, 3, pack, CompressNone)))
	f.Add([]byte("kithblob\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePart(b)
		if err != nil {
			return
		}
		if len(p.Data) > MaxChunkSize || p.Index >= p.Count {
			t.Fatalf("accepted a part of %d bytes, %d of %d", len(p.Data), p.Index, p.Count)
		}
	})
}

func FuzzParseIndex(f *testing.F) {
	k := newTestKeys(f)
	s := must(Seal(context.Background(), history(2, 1000), k.to(), nil))
	ix := &Index{Generation: 3, Archives: []Entry{s.Entry()}, Roster: []byte("r"), Friends: []byte("f")}
	f.Add(must(ix.Sign(k.devA)))
	f.Add(must((&Index{Generation: 1}).Sign(k.devB)))
	f.Add([]byte("kithindx\x01"))
	trust := Trust{Devices: []seed.DevicePublic{k.devA.Public()}}
	f.Fuzz(func(t *testing.T, b []byte) {
		ix, _, err := ParseIndex(b)
		if err != nil {
			return
		}
		// Only signed bytes get here; they re-encode to themselves.
		body, err := ix.marshal()
		if err != nil {
			t.Fatalf("ParseIndex accepted what marshal refuses: %v", err)
		}
		if !bytes.Equal(body, b[:len(body)]) {
			t.Fatal("the index does not re-encode to the bytes signed")
		}
		VerifyIndex(b, trust)
	})
}

func FuzzParseNames(f *testing.F) {
	f.Add(AppendNames(nil, names("f", 3)))
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ns, err := ParseNames(b)
		if err != nil {
			return
		}
		if !bytes.Equal(AppendNames(nil, ns), b) {
			t.Fatal("names do not re-encode to their bytes")
		}
	})
}

func FuzzParseRoots(f *testing.F) {
	roots, _ := BucketRoots(names("r", 10), 2)
	f.Add(must(AppendRoots(nil, roots)))
	f.Fuzz(func(t *testing.T, b []byte) {
		roots, bits, err := ParseRoots(b)
		if err != nil {
			return
		}
		if len(roots) != 1<<bits {
			t.Fatalf("%d roots for %d bits", len(roots), bits)
		}
	})
}

// FuzzOpenLayers feeds arbitrary bytes to both layer openers, the decoders
// of what a holder or a cooperating device sends.
func FuzzOpenLayers(f *testing.F) {
	k := newTestKeys(f)
	s := must(Seal(context.Background(), history(1, 500), k.to(), nil))
	f.Add(s.Blobs[0].Data)
	f.Add(must(PeelOuter(s.Blobs[0].Data, k.archB)))
	f.Add([]byte("age-encryption.org/v1\n-> X25519 AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		PeelOuter(b, k.archB)
		OpenInner(b, k.archA)
		PeelIndex(b, k.archB)
		OpenIndexInner(b, k.archA, Trust{})
	})
}
