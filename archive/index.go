package archive

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/kith-project/kith/seed"
)

// Index lists a user's archives and carries what a user who lost every
// device needs to find their friends again. It travels signed by a device
// key and sealed twice, like a blob (SealIndex, OpenIndex).
type Index struct {
	// Generation orders indexes: each new index has a higher one, so that
	// an old index sent again is refused (Trust.Known). It is at least 1.
	Generation uint64
	// Created is when the index was made, to whole seconds.
	Created time.Time
	// Archives are the archives, in the order the caller keeps them.
	Archives []Entry
	// Roster and Friends are opaque to this package: the caller's
	// serialized roster and friend list, each at most MaxOpaque bytes.
	Roster  []byte
	Friends []byte
}

// Entry is one archive in the index.
type Entry struct {
	ID            ArchiveID
	Conversations []string
	// Blobs are the archive's blobs, part 0 first.
	Blobs []BlobRef
}

// BlobRef is one blob in the index: its name, sealed size, and the two
// recipients whose keys open it.
type BlobRef struct {
	Name  BlobName
	Size  int64
	Inner seed.ArchiveRecipient
	Outer seed.ArchiveRecipient
}

// Trust is what an index must satisfy to be accepted.
type Trust struct {
	// Devices are the device keys whose signature is accepted: the user's
	// devices from the roster, or, after losing every device, the keys
	// seed.DeriveDevice gives for the indexes the user had.
	Devices []seed.DevicePublic
	// Known is the generation of the newest index already accepted, 0 if
	// none. An index whose generation is not above it fails with
	// ErrReplayed (to accept the same generation again, pass Known-1).
	Known uint64
}

// Bounds of the index format.
const (
	// MaxOpaque bounds the roster and the friend list: 16 MiB each.
	MaxOpaque = 16 << 20
	// MaxArchives is the most archives one index lists.
	MaxArchives = 1 << 20
	// MaxIndexSize bounds a signed index.
	MaxIndexSize = 64 << 20
	// MaxSealedIndexSize bounds a sealed index and its inner layer.
	MaxSealedIndexSize = MaxIndexSize + 1<<20
)

const (
	indexMagic   = "kithindx"
	indexVersion = 1
	// indexContext is signed before the index bytes.
	indexContext = "kith/v1/archive-index\x00"
	blobRefSize  = 32 + 8 + 32 + 32
	sigTail      = 32 + ed25519.SignatureSize
)

// Sign returns the index in its signed form (see the package doc), signed by
// key.
func (ix *Index) Sign(key seed.DeviceKey) ([]byte, error) {
	b, err := ix.marshal()
	if err != nil {
		return nil, err
	}
	pub := key.Public()
	b = append(b, pub[:]...)
	sig := key.Sign(append([]byte(indexContext), b...))
	if sig == nil {
		return nil, errors.New("archive: signing the index: the zero device key signs nothing")
	}
	b = append(b, sig...)
	if len(b) > MaxIndexSize {
		return nil, fmt.Errorf("%w: the index is %d bytes, at most %d", ErrTooLarge, len(b), MaxIndexSize)
	}
	return b, nil
}

func (ix *Index) marshal() ([]byte, error) {
	if ix.Generation == 0 {
		return nil, errors.New("archive: an index's generation is at least 1")
	}
	if len(ix.Roster) > MaxOpaque || len(ix.Friends) > MaxOpaque {
		return nil, fmt.Errorf("%w: a roster or friend list above %d bytes", ErrTooLarge, MaxOpaque)
	}
	if len(ix.Archives) > MaxArchives {
		return nil, fmt.Errorf("%w: %d archives, at most %d in one index", ErrTooLarge, len(ix.Archives), MaxArchives)
	}
	b := []byte(indexMagic)
	b = append(b, indexVersion)
	b = binary.BigEndian.AppendUint64(b, ix.Generation)
	b = binary.BigEndian.AppendUint64(b, uint64(ix.Created.Unix()))
	b = appendBytes32(b, ix.Roster)
	b = appendBytes32(b, ix.Friends)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ix.Archives)))
	for _, e := range ix.Archives {
		if len(e.Conversations) > MaxRecords || len(e.Blobs) == 0 || len(e.Blobs) > MaxParts {
			return nil, fmt.Errorf("archive: archive %s has %d conversations and %d blobs", e.ID, len(e.Conversations), len(e.Blobs))
		}
		b = append(b, e.ID[:]...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(e.Conversations)))
		for _, c := range e.Conversations {
			if err := checkID(c); err != nil {
				return nil, err
			}
			b = binary.BigEndian.AppendUint16(b, uint16(len(c)))
			b = append(b, c...)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(e.Blobs)))
		for _, r := range e.Blobs {
			if r.Size < 0 || r.Size > MaxBlobSize {
				return nil, fmt.Errorf("archive: blob %s has a size of %d", r.Name.Short(), r.Size)
			}
			b = append(b, r.Name[:]...)
			b = binary.BigEndian.AppendUint64(b, uint64(r.Size))
			b = append(b, r.Inner[:]...)
			b = append(b, r.Outer[:]...)
		}
	}
	return b, nil
}

func appendBytes32(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// ParseIndex decodes a signed index and checks that its signature is valid
// for the key it names, without deciding whether that key is trusted:
// VerifyIndex does. It returns the signer's key. Roster and Friends alias b.
func ParseIndex(b []byte) (*Index, seed.DevicePublic, error) {
	var signer seed.DevicePublic
	if len(b) > MaxIndexSize {
		return nil, signer, fmt.Errorf("%w: an index of %d bytes, at most %d", ErrTooLarge, len(b), MaxIndexSize)
	}
	if len(b) < len(indexMagic)+1+sigTail || string(b[:len(indexMagic)]) != indexMagic {
		return nil, signer, fmt.Errorf("%w: not an archive index", ErrCorrupt)
	}
	if v := b[len(indexMagic)]; v != indexVersion {
		return nil, signer, fmt.Errorf("%w: index format version %d, this kith reads version %d: upgrade kith", ErrCorrupt, v, indexVersion)
	}
	body := b[:len(b)-ed25519.SignatureSize]
	sig := b[len(body):]
	copy(signer[:], body[len(body)-32:])
	if !signer.Verify(append([]byte(indexContext), body...), sig) {
		return nil, signer, fmt.Errorf("%w: the signature does not verify", ErrForged)
	}
	d := decoder{b: body[len(indexMagic)+1 : len(body)-32]}
	ix := &Index{Generation: d.uint64()}
	ix.Created = time.Unix(int64(d.uint64()), 0).UTC()
	ix.Roster = d.bytes32(MaxOpaque)
	ix.Friends = d.bytes32(MaxOpaque)
	n := d.count(MaxArchives, 16+4+4+blobRefSize)
	ix.Archives = make([]Entry, 0, n)
	for range n {
		var e Entry
		d.read(e.ID[:])
		nc := d.count(MaxRecords, 2+1)
		e.Conversations = make([]string, 0, nc)
		for range nc {
			l := int(d.uint16())
			c := string(d.next(l))
			if d.err == nil {
				if err := checkID(c); err != nil {
					d.fail("%v", err)
				}
			}
			e.Conversations = append(e.Conversations, c)
		}
		nb := d.count(MaxParts, blobRefSize)
		if nb == 0 {
			d.fail("archive %s has no blobs", e.ID)
		}
		e.Blobs = make([]BlobRef, 0, nb)
		for range nb {
			var r BlobRef
			d.read(r.Name[:])
			size := d.uint64()
			if size > MaxBlobSize {
				d.fail("blob %s has a size of %d", r.Name.Short(), size)
			}
			r.Size = int64(size)
			d.read(r.Inner[:])
			d.read(r.Outer[:])
			e.Blobs = append(e.Blobs, r)
		}
		ix.Archives = append(ix.Archives, e)
		if d.err != nil {
			break
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d bytes after the last archive", len(d.b))
	}
	if d.err == nil && ix.Generation == 0 {
		d.fail("generation 0")
	}
	if d.err != nil {
		return nil, signer, fmt.Errorf("%w: the index: %w", ErrCorrupt, d.err)
	}
	return ix, signer, nil
}

// VerifyIndex decodes a signed index and accepts it only if a device in
// trust.Devices signed it (else ErrForged) and its generation is above
// trust.Known (else ErrReplayed).
func VerifyIndex(b []byte, trust Trust) (*Index, error) {
	ix, signer, err := ParseIndex(b)
	if err != nil {
		return nil, err
	}
	ok := false
	for _, d := range trust.Devices {
		if d.Equal(signer) {
			ok = true
		}
	}
	if !ok {
		return nil, fmt.Errorf("%w: signed by device %s, which is not one of the %d trusted", ErrForged, signer.Short(), len(trust.Devices))
	}
	if ix.Generation <= trust.Known {
		return nil, fmt.Errorf("%w: generation %d, and generation %d is already known", ErrReplayed, ix.Generation, trust.Known)
	}
	return ix, nil
}

// SealIndex signs the index with key and seals it twice, like a blob: inner
// layer to to.Inner, outer to to.Outer. The result is named by its hash.
func SealIndex(ix *Index, key seed.DeviceKey, to Recipients) (Blob, error) {
	if err := to.check(); err != nil {
		return Blob{}, err
	}
	signed, err := ix.Sign(key)
	if err != nil {
		return Blob{}, err
	}
	inner, err := to.Inner.AgeRecipient()
	if err != nil {
		return Blob{}, err
	}
	outer, err := to.Outer.AgeRecipient()
	if err != nil {
		return Blob{}, err
	}
	in, err := sealLayer(inner, signed)
	if err != nil {
		return Blob{}, err
	}
	out, err := sealLayer(outer, in)
	if err != nil {
		return Blob{}, err
	}
	return Blob{Name: NameOf(out), Data: out}, nil
}

// PeelIndex opens a sealed index's outer layer, as PeelOuter does a blob's,
// for a device that holds the outer key to hand to the one holding the
// inner key.
func PeelIndex(sealed []byte, outer seed.ArchiveKey) ([]byte, error) {
	return openLayer(sealed, []seed.ArchiveKey{outer}, "index's outer layer", MaxSealedIndexSize)
}

// OpenIndexInner opens a sealed index's inner layer, as PeelIndex returned
// it, and verifies the index against trust.
func OpenIndexInner(inner []byte, key seed.ArchiveKey, trust Trust) (*Index, error) {
	signed, err := openLayer(inner, []seed.ArchiveKey{key}, "index's inner layer", MaxSealedIndexSize)
	if err != nil {
		return nil, err
	}
	return VerifyIndex(signed, trust)
}

// OpenIndex opens a sealed index with both keys and verifies it against
// trust.
func OpenIndex(sealed []byte, outer, inner seed.ArchiveKey, trust Trust) (*Index, error) {
	in, err := PeelIndex(sealed, outer)
	if err != nil {
		return nil, err
	}
	return OpenIndexInner(in, inner, trust)
}

// OpenIndexWith opens a sealed index with whichever of keys are its two
// recipients, as OpenWith does a blob, and verifies it against trust: the
// path of a user who lost every device and has only the phrase.
func OpenIndexWith(sealed []byte, keys []seed.ArchiveKey, trust Trust) (*Index, error) {
	in, err := openLayer(sealed, keys, "index's outer layer", MaxSealedIndexSize)
	if err != nil {
		return nil, err
	}
	signed, err := openLayer(in, keys, "index's inner layer", MaxSealedIndexSize)
	if err != nil {
		return nil, err
	}
	return VerifyIndex(signed, trust)
}

// Blob returns the index's reference to the named blob, and whether it has
// one.
func (ix *Index) Blob(name BlobName) (BlobRef, bool) {
	for _, e := range ix.Archives {
		for _, r := range e.Blobs {
			if r.Name == name {
				return r, true
			}
		}
	}
	return BlobRef{}, false
}

// Conversation returns the archive that holds the conversation, and whether
// one does.
func (ix *Index) Conversation(id string) (Entry, bool) {
	for _, e := range ix.Archives {
		for _, c := range e.Conversations {
			if c == id {
				return e, true
			}
		}
	}
	return Entry{}, false
}
