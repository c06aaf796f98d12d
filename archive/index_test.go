package archive

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/seed"
)

func testIndex(t *testing.T, k testKeys, gen uint64) *Index {
	t.Helper()
	s, err := Seal(context.Background(), history(3, 10_000), k.to(), &Options{ChunkSize: 8000})
	if err != nil {
		t.Fatal(err)
	}
	return &Index{
		Generation: gen,
		Created:    time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC),
		Archives:   []Entry{s.Entry()},
		Roster:     []byte("the roster, as the caller serialized it"),
		Friends:    []byte("bob, carol"),
	}
}

func trustAB(k testKeys, known uint64) Trust {
	return Trust{Devices: []seed.DevicePublic{k.devA.Public(), k.devB.Public()}, Known: known}
}

func TestIndexRoundTrip(t *testing.T) {
	k := newTestKeys(t)
	ix := testIndex(t, k, 5)
	sealed, err := SealIndex(ix, k.devA, k.to())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed.Data, []byte("bob, carol")) {
		t.Fatal("the sealed index shows the friend list")
	}
	got, err := OpenIndex(sealed.Data, k.archB, k.archA, trustAB(k, 4))
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation != 5 || !got.Created.Equal(ix.Created) || string(got.Roster) != string(ix.Roster) || string(got.Friends) != string(ix.Friends) {
		t.Fatalf("got %+v", got)
	}
	if len(got.Archives) != 1 || len(got.Archives[0].Blobs) != len(ix.Archives[0].Blobs) {
		t.Fatalf("archives: %+v", got.Archives)
	}
	for i, r := range ix.Archives[0].Blobs {
		if got.Archives[0].Blobs[i] != r {
			t.Fatalf("blob %d: %+v, want %+v", i, got.Archives[0].Blobs[i], r)
		}
	}
	if e, ok := got.Conversation("conv-0002"); !ok || e.ID != ix.Archives[0].ID {
		t.Fatal("Conversation does not find conv-0002")
	}
	if r, ok := got.Blob(ix.Archives[0].Blobs[1].Name); !ok || !r.Inner.Equal(k.archA.Recipient()) || !r.Outer.Equal(k.archB.Recipient()) {
		t.Fatal("Blob does not find the second blob with its recipients")
	}
	// The cooperative path: B peels, A opens.
	inner, err := PeelIndex(sealed.Data, k.archB)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenIndexInner(inner, k.archA, trustAB(k, 0)); err != nil {
		t.Fatal(err)
	}
	// One key alone opens nothing.
	if _, err := PeelIndex(sealed.Data, k.archA); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("peeling the index with the inner key: %v", err)
	}
	if _, err := OpenIndexInner(inner, k.archB, trustAB(k, 0)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("opening the index's inner layer with the outer key: %v", err)
	}
}

func TestIndexReplayed(t *testing.T) {
	k := newTestKeys(t)
	old, err := SealIndex(testIndex(t, k, 3), k.devB, k.to())
	if err != nil {
		t.Fatal(err)
	}
	for _, known := range []uint64{3, 4, 100} {
		if _, err := OpenIndex(old.Data, k.archB, k.archA, trustAB(k, known)); !errors.Is(err, ErrReplayed) {
			t.Fatalf("generation 3 with %d known: %v, want ErrReplayed", known, err)
		}
	}
}

func TestIndexForged(t *testing.T) {
	k := newTestKeys(t)
	ix := testIndex(t, k, 2)
	// Signed by a device the verifier does not trust.
	other, _, err := seed.DeriveDevice(bytes.Repeat([]byte{9}, seed.SeedSize), 0)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := ix.Sign(other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyIndex(signed, trustAB(k, 0)); !errors.Is(err, ErrForged) {
		t.Fatalf("signed by a stranger: %v, want ErrForged", err)
	}
	// Signed by a trusted device, then changed.
	signed, err = ix.Sign(k.devA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyIndex(signed, trustAB(k, 0)); err != nil {
		t.Fatal(err)
	}
	for _, pos := range []int{9, 20, 40, len(signed) / 2, len(signed) - 70, len(signed) - 1} {
		if _, err := VerifyIndex(flip(signed, pos), trustAB(k, 0)); !errors.Is(err, ErrForged) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d changed: %v, want ErrForged", pos, err)
		}
	}
	// A generation raised by hand, to beat the replay check.
	bumped := bytes.Clone(signed)
	bumped[9+7]++
	if _, err := VerifyIndex(bumped, trustAB(k, 0)); !errors.Is(err, ErrForged) {
		t.Fatalf("generation raised: %v, want ErrForged", err)
	}
	// The signer's key swapped for a trusted one.
	swapped := bytes.Clone(signed)
	pb := k.devB.Public()
	copy(swapped[len(swapped)-96:], pb[:])
	if _, err := VerifyIndex(swapped, trustAB(k, 0)); !errors.Is(err, ErrForged) {
		t.Fatalf("signer swapped: %v, want ErrForged", err)
	}
}

func TestIndexRefusesBadInput(t *testing.T) {
	k := newTestKeys(t)
	if _, err := (&Index{}).Sign(k.devA); err == nil {
		t.Error("generation 0 was signed")
	}
	if _, err := (&Index{Generation: 1, Roster: make([]byte, MaxOpaque+1)}).Sign(k.devA); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a roster past MaxOpaque: %v", err)
	}
	if _, err := (&Index{Generation: 1}).Sign(seed.DeviceKey{}); err == nil {
		t.Error("the zero key signed")
	}
	if _, err := SealIndex(&Index{Generation: 1}, k.devA, Recipients{Inner: k.archA.Recipient(), Outer: k.archA.Recipient()}); err == nil {
		t.Error("an index sealed to one key twice")
	}
}

// TestOpenWithThePhrase: with every device lost, the keys derived from the
// phrase (several device indexes and the recovery key) open the index and
// the blobs; the keys of one layer alone do not.
func TestOpenWithThePhrase(t *testing.T) {
	k := newTestKeys(t)
	phrase := bytes.Repeat([]byte{7}, seed.SeedSize)
	var keys []seed.ArchiveKey
	var trusted []seed.DevicePublic
	for i := range uint32(4) {
		d, a, err := seed.DeriveDevice(phrase, i)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, a)
		trusted = append(trusted, d.Public())
	}
	keys = append(keys, k.recv)
	to := Recipients{Inner: k.archB.Recipient(), Outer: k.recv.Recipient()}
	recs := history(3, 9000)
	s, err := Seal(context.Background(), recs, to, &Options{ChunkSize: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	ix := &Index{Generation: 9, Archives: []Entry{s.Entry()}, Friends: []byte("bob")}
	sealed, err := SealIndex(ix, k.devB, to)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenIndexWith(sealed.Data, keys, Trust{Devices: trusted})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Friends) != "bob" {
		t.Fatalf("friends %q", got.Friends)
	}
	back, err := OpenWith(context.Background(), s.Blobs, keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, back, recs)
	// Without the recovery key, or without device 1's, nothing opens.
	for _, subset := range [][]seed.ArchiveKey{keys[:4], {keys[0], keys[2], keys[3], keys[4]}, nil} {
		if _, err := OpenWith(context.Background(), s.Blobs, subset, nil); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("%d keys: %v, want ErrWrongKey", len(subset), err)
		}
		if _, err := OpenIndexWith(sealed.Data, subset, Trust{Devices: trusted}); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("index with %d keys: %v, want ErrWrongKey", len(subset), err)
		}
	}
}

// TestIndexGolden pins the index format byte by byte.
func TestIndexGolden(t *testing.T) {
	k := newTestKeys(t)
	ix := &Index{
		Generation: 2,
		Created:    time.Unix(0x01020304, 0),
		Roster:     []byte("R"),
		Friends:    []byte("FF"),
		Archives: []Entry{{
			ID:            ArchiveID{0xa1},
			Conversations: []string{"c"},
			Blobs:         []BlobRef{{Name: BlobName{0xb1}, Size: 5, Inner: seed.ArchiveRecipient{0x11}, Outer: seed.ArchiveRecipient{0x22}}},
		}},
	}
	signed, err := ix.Sign(k.devA)
	if err != nil {
		t.Fatal(err)
	}
	z := func(n int) string { return strings.Repeat("00", n) }
	pub := k.devA.Public()
	want := "6b697468696e6478" + "01" + "0000000000000002" + "0000000001020304" +
		"00000001" + "52" + "00000002" + "4646" +
		"00000001" + "a1" + z(15) + "00000001" + "0001" + "63" +
		"00000001" + "b1" + z(31) + "0000000000000005" + "11" + z(31) + "22" + z(31) +
		hex.EncodeToString(pub[:])
	body := hex.EncodeToString(signed[:len(signed)-64])
	if body != want {
		t.Fatalf("index\n got %s\nwant %s", body, want)
	}
	if !pub.Verify(append([]byte("kith/v1/archive-index\x00"), signed[:len(signed)-64]...), signed[len(signed)-64:]) {
		t.Fatal("the signature is not over the documented bytes")
	}
}
