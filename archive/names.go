package archive

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
)

// BlobName names a sealed blob: the SHA-256 of its sealed bytes, the outer
// age file exactly as it is stored and sent. Its text form is 64 lowercase
// hexadecimal digits.
type BlobName [32]byte

// NameOf returns the name of the sealed blob b.
func NameOf(b []byte) BlobName { return BlobName(sha256.Sum256(b)) }

// ParseBlobName parses 64 hexadecimal digits.
func ParseBlobName(s string) (BlobName, error) {
	var n BlobName
	return n, n.UnmarshalText([]byte(s))
}

// String returns the name in lowercase hex.
func (n BlobName) String() string { return hex.EncodeToString(n[:]) }

// Short returns the first 12 hex digits, for people.
func (n BlobName) Short() string { return hex.EncodeToString(n[:6]) }

// Equal reports whether n and m are the same name, in constant time.
func (n BlobName) Equal(m BlobName) bool { return subtle.ConstantTimeCompare(n[:], m[:]) == 1 }

// Less orders names by their bytes, the order of every sorted list of names
// in this package.
func (n BlobName) Less(m BlobName) bool { return compare32(n, m) < 0 }

// Matches reports whether b's SHA-256 is n.
func (n BlobName) Matches(b []byte) bool { return n.Equal(NameOf(b)) }

// MarshalText returns the name in lowercase hex.
func (n BlobName) MarshalText() ([]byte, error) { return []byte(n.String()), nil }

// UnmarshalText parses 64 hexadecimal digits.
func (n *BlobName) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("archive: a blob name is 64 hex digits, not %d characters", len(b))
	}
	var v BlobName
	if _, err := hex.Decode(v[:], b); err != nil {
		return fmt.Errorf("archive: a blob name is 64 hex digits: %w", err)
	}
	*n = v
	return nil
}

// ArchiveID identifies one sealed archive: 16 random bytes chosen at
// sealing, written into every blob of the archive so that parts of two
// archives cannot be mixed. Its text form is 32 lowercase hex digits.
type ArchiveID [16]byte

// NewArchiveID returns a random ArchiveID.
func NewArchiveID() ArchiveID {
	var id ArchiveID
	rand.Read(id[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return id
}

// String returns the ID in lowercase hex.
func (id ArchiveID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText returns the ID in lowercase hex.
func (id ArchiveID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses 32 hexadecimal digits.
func (id *ArchiveID) UnmarshalText(b []byte) error {
	if len(b) != 32 {
		return fmt.Errorf("archive: an archive ID is 32 hex digits, not %d characters", len(b))
	}
	var v ArchiveID
	if _, err := hex.Decode(v[:], b); err != nil {
		return fmt.Errorf("archive: an archive ID is 32 hex digits: %w", err)
	}
	*id = v
	return nil
}

func compare32(a, b [32]byte) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}
