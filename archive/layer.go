package archive

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
	"github.com/kith-project/kith/seed"
)

// Recipients are the two keys an archive is sealed to. Inner and Outer must
// differ: the point is that no one key opens both layers.
type Recipients struct {
	// Inner is the archive recipient of the access device whose key opens
	// the inner layer, the one around the plaintext.
	Inner seed.ArchiveRecipient
	// Outer is the recipient of the outer layer: another access device's,
	// or, with a single device, the user's recovery key
	// (seed.DeriveRecoveryArchive).
	Outer seed.ArchiveRecipient
}

func (r Recipients) check() error {
	var zero seed.ArchiveRecipient
	if r.Inner.Equal(zero) || r.Outer.Equal(zero) {
		return errors.New("archive: sealing needs two recipients, inner and outer")
	}
	if r.Inner.Equal(r.Outer) {
		return errors.New("archive: the inner and outer recipients are the same key, which alone would open both layers: give two devices' keys, or a device's and the recovery key")
	}
	return nil
}

// sealLayer seals the concatenation of plain to one recipient as a
// standard age file.
func sealLayer(to *age.X25519Recipient, plain ...[]byte) ([]byte, error) {
	n := 0
	for _, p := range plain {
		n += len(p)
	}
	var buf bytes.Buffer
	// age adds a header of about 200 bytes and 16 bytes per 64 KiB chunk.
	buf.Grow(n + n/4096 + 512)
	w, err := age.Encrypt(&buf, to)
	if err != nil {
		return nil, fmt.Errorf("archive: sealing: %w", err)
	}
	for _, p := range plain {
		if _, err := w.Write(p); err != nil {
			return nil, fmt.Errorf("archive: sealing: %w", err)
		}
	}
	// Without Close the last chunk is never written (DESIGN §10).
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("archive: sealing: %w", err)
	}
	return buf.Bytes(), nil
}

// openLayer opens one age layer with key. Nothing is returned until the
// whole layer has been read and authenticated to a clean end: age's stream
// hands out plaintext before it can tell a truncated file from a whole one.
func openLayer(sealed []byte, keys []seed.ArchiveKey, what string, limit int) ([]byte, error) {
	if len(sealed) > limit {
		return nil, fmt.Errorf("%w: the %s is %d bytes, at most %d", ErrTooLarge, what, len(sealed), limit)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no key given for the %s", ErrWrongKey, what)
	}
	ids := make([]age.Identity, len(keys))
	for i, k := range keys {
		id, err := k.AgeIdentity()
		if err != nil {
			return nil, fmt.Errorf("archive: opening the %s: %w", what, err)
		}
		ids[i] = id
	}
	r, err := age.Decrypt(bytes.NewReader(sealed), ids...)
	if err != nil {
		var nomatch *age.NoIdentityMatchError
		if errors.As(err, &nomatch) {
			if len(keys) > 1 {
				return nil, fmt.Errorf("%w: none of the %d keys given is a recipient of the %s (or its header is damaged)", ErrWrongKey, len(keys), what)
			}
			return nil, fmt.Errorf("%w: %s is not a recipient of the %s (or its header is damaged)", ErrWrongKey, keys[0].Recipient(), what)
		}
		return nil, fmt.Errorf("%w: the %s's header: %w", ErrCorrupt, what, err)
	}
	// The plaintext is shorter than the sealed bytes, so a buffer of their
	// size holds it; filling it means the layer is not what it claims.
	out := make([]byte, len(sealed))
	n := 0
	for {
		if n == len(out) {
			return nil, fmt.Errorf("%w: the %s decrypts to more than it holds", ErrCorrupt, what)
		}
		m, err := r.Read(out[n:])
		n += m
		if err == io.EOF {
			// age returns io.EOF itself only after the last chunk, marked
			// last, authenticated; a cut file gives another error.
			return out[:n:n], nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: the %s is truncated or damaged: %w", ErrCorrupt, what, err)
		}
	}
}

// PeelOuter opens a blob's outer layer with the outer recipient's key and
// returns the inner layer, itself a standard age file that only the inner
// recipient opens. This is what the device holding the outer key does for
// another device that holds the inner one: it hands the result over an
// authenticated channel. A key that is not the outer recipient fails with
// ErrWrongKey; a damaged or truncated blob with ErrCorrupt. PeelOuter does
// not check the blob's name: check it first with BlobName.Matches, or use
// CheckBlob.
func PeelOuter(blob []byte, outer seed.ArchiveKey) ([]byte, error) {
	return openLayer(blob, []seed.ArchiveKey{outer}, "outer layer", MaxBlobSize)
}

// OpenInner opens an inner layer, as PeelOuter returned it, with the inner
// recipient's key, and decodes the part inside. A key that is not the inner
// recipient fails with ErrWrongKey; damage with ErrCorrupt.
func OpenInner(inner []byte, key seed.ArchiveKey) (Part, error) {
	plain, err := openLayer(inner, []seed.ArchiveKey{key}, "inner layer", MaxBlobSize)
	if err != nil {
		return Part{}, err
	}
	return ParsePart(plain)
}

// CheckBlob checks that a blob's bytes hash to its name, and fails with
// ErrNameMismatch if not.
func CheckBlob(b Blob) error {
	if !b.Name.Matches(b.Data) {
		return fmt.Errorf("%w: blob %s hashes to %s", ErrNameMismatch, b.Name.Short(), NameOf(b.Data).Short())
	}
	return nil
}

// RecipientsFor returns the recipients of the n-th archive a device seals:
// the inner layer to the device itself (self), the outer layer to one of
// the user's other access devices, taken in turn by n so that the work of
// peeling is spread, or to the user's recovery recipient when the device
// has no other (DESIGN §8). Recipients in others equal to self are skipped.
func RecipientsFor(self seed.ArchiveRecipient, others []seed.ArchiveRecipient, recovery seed.ArchiveRecipient, n uint64) Recipients {
	var pool []seed.ArchiveRecipient
	for _, o := range others {
		if !o.Equal(self) {
			pool = append(pool, o)
		}
	}
	if len(pool) == 0 {
		return Recipients{Inner: self, Outer: recovery}
	}
	return Recipients{Inner: self, Outer: pool[n%uint64(len(pool))]}
}
