package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
)

func names(prefix string, n int) []BlobName {
	var out []BlobName
	for i := range n {
		out = append(out, BlobName(sha256.Sum256(fmt.Appendf(nil, "%s%d", prefix, i))))
	}
	return out
}

func TestMerkleRoot(t *testing.T) {
	a := names("x", 37)
	r := MerkleRoot(a)
	rev := slices.Clone(a)
	slices.Reverse(rev)
	if !MerkleRoot(append(rev, a[3], a[5])).Equal(r) {
		t.Fatal("order or duplicates changed the root")
	}
	if MerkleRoot(a[:36]).Equal(r) || MerkleRoot(append(slices.Clone(a), names("y", 1)...)).Equal(r) {
		t.Fatal("a different set has the same root")
	}
	// Goldens: the empty set, one name, and three names by the rule.
	if got := hex.EncodeToString(func() []byte { x := MerkleRoot(nil); return x[:] }()); got != sha256hex([]byte{2}) {
		t.Fatalf("empty root %s", got)
	}
	n := names("g", 3)
	s := SortNames(n)
	leaf := func(b BlobName) [32]byte { return sha256.Sum256(append([]byte{0}, b[:]...)) }
	node := func(l, r [32]byte) [32]byte { return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...)) }
	want := node(node(leaf(s[0]), leaf(s[1])), leaf(s[2]))
	if got := MerkleRoot(n); got != Root(want) {
		t.Fatal("three names: root does not follow the documented rule")
	}
	if got := MerkleRoot(n[:1]); got != Root(leaf(n[0])) {
		t.Fatal("one name: root is not its leaf")
	}
}

func sha256hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// TestDiffProtocol runs the protocol of the package doc between two holders
// and checks that it finds exactly the difference, sending the names of the
// differing buckets only.
func TestDiffProtocol(t *testing.T) {
	common := names("c", 5000)
	onlyA := names("a", 7)
	onlyB := names("b", 3)
	a := append(slices.Clone(common), onlyA...)
	b := append(slices.Clone(common), onlyB...)
	const bits = 8

	if MerkleRoot(a).Equal(MerkleRoot(b)) {
		t.Fatal("different sets, same root")
	}
	rootsB, err := BucketRoots(b, bits)
	if err != nil {
		t.Fatal(err)
	}
	wire, err := AppendRoots(nil, rootsB)
	if err != nil {
		t.Fatal(err)
	}
	gotB, gotBits, err := ParseRoots(wire)
	if err != nil || gotBits != bits {
		t.Fatal(err, gotBits)
	}
	rootsA, _ := BucketRoots(a, bits)
	diff, err := DifferingBuckets(rootsA, gotB)
	if err != nil {
		t.Fatal(err)
	}
	if len(diff) == 0 || len(diff) > len(onlyA)+len(onlyB) {
		t.Fatalf("%d buckets differ for %d differing names", len(diff), len(onlyA)+len(onlyB))
	}
	sentA, err := ParseNames(AppendNames(nil, NamesInBuckets(a, bits, diff)))
	if err != nil {
		t.Fatal(err)
	}
	sentB, err := ParseNames(AppendNames(nil, NamesInBuckets(b, bits, diff)))
	if err != nil {
		t.Fatal(err)
	}
	if len(sentA)+len(sentB) > (len(a)+len(b))/10 {
		t.Fatalf("%d names sent out of %d", len(sentA)+len(sentB), len(a)+len(b))
	}
	missing, extra := Diff(NamesInBuckets(a, bits, diff), sentB)
	if !slices.Equal(missing, SortNames(onlyB)) || !slices.Equal(extra, SortNames(onlyA)) {
		t.Fatalf("A: missing %d, extra %d; want %d and %d", len(missing), len(extra), len(onlyB), len(onlyA))
	}
	missing, extra = Diff(NamesInBuckets(b, bits, diff), sentA)
	if !slices.Equal(missing, SortNames(onlyA)) || !slices.Equal(extra, SortNames(onlyB)) {
		t.Fatal("B's side of the diff is wrong")
	}
	// Equal sets: equal roots, and no bucket differs.
	rootsC, _ := BucketRoots(slices.Clone(common), bits)
	rootsD, _ := BucketRoots(common, bits)
	if d, _ := DifferingBuckets(rootsC, rootsD); len(d) != 0 {
		t.Fatal("equal sets have differing buckets")
	}
}

func TestDiff(t *testing.T) {
	n := SortNames(names("d", 6))
	missing, extra := Diff([]BlobName{n[0], n[1], n[3]}, []BlobName{n[1], n[2], n[3], n[4]})
	if !slices.Equal(missing, []BlobName{n[2], n[4]}) || !slices.Equal(extra, []BlobName{n[0]}) {
		t.Fatalf("missing %v extra %v", missing, extra)
	}
	if m, e := Diff(nil, nil); m != nil || e != nil {
		t.Fatal("two empty sets differ")
	}
}

func TestParseNamesRefuses(t *testing.T) {
	n := SortNames(names("p", 3))
	good := AppendNames(nil, n)
	bad := map[string][]byte{
		"empty":        {},
		"short":        good[:len(good)-1],
		"trailing":     append(append([]byte(nil), good...), 0),
		"huge count":   {0xff, 0xff, 0xff, 0xff},
		"not sorted":   append([]byte{0, 0, 0, 2}, append(n[1][:], n[0][:]...)...),
		"a name twice": append([]byte{0, 0, 0, 2}, append(n[1][:], n[1][:]...)...),
	}
	for name, b := range bad {
		if _, err := ParseNames(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, b := range [][]byte{{}, {0}, {17}, {1}, append([]byte{1}, make([]byte, 65)...)} {
		if _, _, err := ParseRoots(b); err == nil {
			t.Errorf("ParseRoots(%x...) accepted", b[:min(len(b), 2)])
		}
	}
	if _, err := BucketRoots(nil, 0); err == nil {
		t.Error("0 bucket bits accepted")
	}
	if _, err := DifferingBuckets(make([]Root, 2), make([]Root, 4)); err == nil {
		t.Error("root lists of different lengths compared")
	}
}
