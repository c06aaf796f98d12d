package archive

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"slices"
)

// Root is the Merkle root of a set of blob names (see the package doc): two
// holders with equal roots hold the same blobs.
type Root [32]byte

// Equal reports whether r and s are the same root, in constant time.
func (r Root) Equal(s Root) bool { return subtle.ConstantTimeCompare(r[:], s[:]) == 1 }

// Domain-separation bytes of the Merkle tree.
const (
	leafTag  = 0x00
	nodeTag  = 0x01
	emptyTag = 0x02
)

// SortNames returns names sorted by their bytes with duplicates removed,
// the canonical form of a set of names. It does not modify names.
func SortNames(names []BlobName) []BlobName {
	s := slices.Clone(names)
	slices.SortFunc(s, func(a, b BlobName) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(s)
}

// MerkleRoot returns the Merkle root of a set of names: the leaves are
// SHA-256(0x00 ‖ name) in sorted order, each node SHA-256(0x01 ‖ left ‖
// right), an odd last node goes up unchanged, and the empty set's root is
// SHA-256(0x02). Order and duplicates in names do not matter.
func MerkleRoot(names []BlobName) Root {
	return merkleSorted(SortNames(names))
}

func merkleSorted(names []BlobName) Root {
	if len(names) == 0 {
		return Root(sha256.Sum256([]byte{emptyTag}))
	}
	level := make([][32]byte, len(names))
	var buf [1 + 64]byte
	for i, n := range names {
		buf[0] = leafTag
		copy(buf[1:], n[:])
		level[i] = sha256.Sum256(buf[:33])
	}
	for len(level) > 1 {
		next := level[:0:0]
		for i := 0; i < len(level); i += 2 {
			if i+1 == len(level) {
				next = append(next, level[i])
				continue
			}
			buf[0] = nodeTag
			copy(buf[1:], level[i][:])
			copy(buf[33:], level[i+1][:])
			next = append(next, sha256.Sum256(buf[:]))
		}
		level = next
	}
	return Root(level[0])
}

// The diff protocol. Two holders A and B reconcile their sets of names:
//
//  1. A sends MerkleRoot(A). If B's is equal, they hold the same blobs.
//  2. Else B sends BucketRoots(B, bits): one root per bucket of names that
//     share their first bits bits.
//  3. A compares them with its own (DifferingBuckets) and sends the names
//     of its buckets that differ (NamesInBuckets), and the bucket numbers.
//  4. B answers with its names in those buckets, and each side computes
//     Diff on the buckets that differ.
//
// The bytes sent are the root, 2^bits roots, and the names of the buckets
// that differ, instead of every name. Buckets with bits = 8 (256 buckets,
// 8 KiB of roots) suit up to a few hundred thousand blobs.

// MaxBucketBits bounds the number of buckets to 2^16.
const MaxBucketBits = 16

// Bucket returns which of 2^bits buckets a name falls into: its first bits
// bits.
func Bucket(n BlobName, bits int) int {
	return int(binary.BigEndian.Uint32(n[:4]) >> (32 - bits))
}

// BucketRoots returns the Merkle root of each of the 2^bits buckets of
// names, bits from 1 to MaxBucketBits.
func BucketRoots(names []BlobName, bits int) ([]Root, error) {
	if bits < 1 || bits > MaxBucketBits {
		return nil, fmt.Errorf("archive: %d bucket bits, want 1 to %d", bits, MaxBucketBits)
	}
	sorted := SortNames(names)
	roots := make([]Root, 1<<bits)
	start := 0
	for b := range roots {
		end := start
		for end < len(sorted) && Bucket(sorted[end], bits) == b {
			end++
		}
		roots[b] = merkleSorted(sorted[start:end])
		start = end
	}
	return roots, nil
}

// DifferingBuckets returns, in order, the buckets whose roots differ
// between mine and theirs; it fails if the two lists differ in length.
func DifferingBuckets(mine, theirs []Root) ([]int, error) {
	if len(mine) != len(theirs) {
		return nil, fmt.Errorf("archive: %d bucket roots against %d", len(mine), len(theirs))
	}
	var out []int
	for i := range mine {
		if !mine[i].Equal(theirs[i]) {
			out = append(out, i)
		}
	}
	return out, nil
}

// NamesInBuckets returns the sorted names that fall into the given buckets.
func NamesInBuckets(names []BlobName, bits int, buckets []int) []BlobName {
	want := make(map[int]bool, len(buckets))
	for _, b := range buckets {
		want[b] = true
	}
	var out []BlobName
	for _, n := range SortNames(names) {
		if want[Bucket(n, bits)] {
			out = append(out, n)
		}
	}
	return out
}

// Diff compares two sets of names: missing are the names in theirs and not
// in mine (to fetch), extra those in mine and not in theirs (to offer).
// Both come back sorted.
func Diff(mine, theirs []BlobName) (missing, extra []BlobName) {
	a, b := SortNames(mine), SortNames(theirs)
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].Less(b[j])):
			extra = append(extra, a[i])
			i++
		case i == len(a) || b[j].Less(a[i]):
			missing = append(missing, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return missing, extra
}

// MaxNames bounds a list of names on the wire: 1<<20 names, 32 MiB.
const MaxNames = 1 << 20

// AppendNames appends the wire form of a set of names: a 32-bit count, then
// the names, sorted and without duplicates.
func AppendNames(b []byte, names []BlobName) []byte {
	s := SortNames(names)
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	for _, n := range s {
		b = append(b, n[:]...)
	}
	return b
}

// ParseNames decodes the wire form of a set of names. It fails unless the
// names are strictly ascending, at most MaxNames, and fill b exactly.
func ParseNames(b []byte) ([]BlobName, error) {
	d := decoder{b: b}
	n := d.count(MaxNames, 32)
	out := make([]BlobName, 0, n)
	for i := range n {
		var v BlobName
		d.read(v[:])
		if d.err == nil && i > 0 && !out[i-1].Less(v) {
			d.fail("name %d is not after name %d", i, i-1)
		}
		out = append(out, v)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d bytes after the names", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: a list of names: %w", ErrCorrupt, d.err)
	}
	return out, nil
}

// AppendRoots appends the wire form of a list of bucket roots: a byte
// giving bits, then 2^bits roots.
func AppendRoots(b []byte, roots []Root) ([]byte, error) {
	bits := 0
	for 1<<bits < len(roots) {
		bits++
	}
	if 1<<bits != len(roots) || bits < 1 || bits > MaxBucketBits {
		return nil, fmt.Errorf("archive: %d bucket roots is not 2^bits for bits 1 to %d", len(roots), MaxBucketBits)
	}
	b = append(b, byte(bits))
	for _, r := range roots {
		b = append(b, r[:]...)
	}
	return b, nil
}

// ParseRoots decodes the wire form of a list of bucket roots, and returns
// them with their bits.
func ParseRoots(b []byte) ([]Root, int, error) {
	if len(b) < 1 || b[0] < 1 || b[0] > MaxBucketBits {
		return nil, 0, fmt.Errorf("%w: bucket roots: bad bits", ErrCorrupt)
	}
	bits := int(b[0])
	if len(b) != 1+32<<bits {
		return nil, 0, fmt.Errorf("%w: %d bytes of bucket roots, want %d for %d bits", ErrCorrupt, len(b), 1+32<<bits, bits)
	}
	roots := make([]Root, 1<<bits)
	for i := range roots {
		copy(roots[i][:], b[1+32*i:])
	}
	return roots, bits, nil
}
