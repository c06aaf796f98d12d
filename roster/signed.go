package roster

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/kith-project/kith/seed"
)

// # The signed roster
//
// A [Signed] roster is what a user's devices tell friends (and each other)
// about the user's devices: every device certificate and every revocation
// they hold, each signed by the user key. The document as a whole carries
// no signature of its own. The user key lives on no device (package device
// drops it after provisioning), so no device could make one; and none is
// needed, because a receiver merges a document as a union ([OpMerge]):
// certificates and revocations are only ever added, and a revocation beats
// any certificate of the same device, for good. An old document can then
// only fail to tell something new; it cannot undo a revocation or bring a
// revoked device back, so there is nothing to roll back and no version to
// protect. What no signature can prevent either is withholding: a device
// that never passes a revocation on. Every device of the user pushes the
// roster, so one silent device does not stop it.
//
// Binary form, version 1 (all integers big-endian):
//
//	"kith-roster"  11 bytes
//	version        1 byte, 1
//	user           32 bytes, the user key
//	ncerts         1 byte, at most MaxSignedCerts
//	ncerts ×       2-byte length, then a device certificate (package seed)
//	nrevs          1 byte, at most MaxSignedRevocations
//	nrevs ×        a revocation, seed.RevocationSize bytes
//
// It is canonical: certificates strictly ascending by device ID, one per
// device; revocations likewise; every record signed by user, and nothing
// after the last one. ParseSigned refuses anything else.

// Limits of a signed roster.
const (
	MaxSignedCerts       = 64  // device certificates in one document
	MaxSignedRevocations = 128 // revocations in one document
	// maxCertBytes bounds one certificate's encoding: the fixed part and
	// the longest name and roles.
	maxCertBytes = 512
	// MaxSignedSize bounds a whole document.
	MaxSignedSize = len(signedMagic) + 1 + 32 + 1 + MaxSignedCerts*(2+maxCertBytes) + 1 + MaxSignedRevocations*seed.RevocationSize
)

const (
	signedMagic   = "kith-roster"
	signedVersion = 1
)

// ErrBadRoster: a signed roster is malformed, forged, foreign or too large.
var ErrBadRoster = errors.New("roster: bad signed roster")

// Signed is a user's signed roster: their devices' certificates and their
// revocations. Build one with [NewSigned] or [Roster.SignedOf].
type Signed struct {
	User        seed.UserPublic
	Certs       []seed.DeviceCert // ascending by device, one per device
	Revocations []seed.Revocation // ascending by device, one per device
}

// NewSigned checks and sorts the records of user's roster. It keeps the
// newest certificate of each device and the earliest revocation, and
// refuses a record signed by someone else, a bad signature or more records
// than the limits.
func NewSigned(user seed.UserPublic, certs []seed.DeviceCert, revs []seed.Revocation) (Signed, error) {
	s := Signed{User: user}
	for _, c := range certs {
		if err := checkCert(user, c); err != nil {
			return Signed{}, err
		}
		i, found := slices.BinarySearchFunc(s.Certs, c.Device, func(x seed.DeviceCert, d seed.DevicePublic) int { return bytes.Compare(x.Device[:], d[:]) })
		switch {
		case !found:
			s.Certs = slices.Insert(s.Certs, i, c)
		case c.Issued.After(s.Certs[i].Issued):
			s.Certs[i] = c
		}
	}
	for _, r := range revs {
		if err := checkRev(user, r); err != nil {
			return Signed{}, err
		}
		i, found := slices.BinarySearchFunc(s.Revocations, r.Device, func(x seed.Revocation, d seed.DevicePublic) int { return bytes.Compare(x.Device[:], d[:]) })
		switch {
		case !found:
			s.Revocations = slices.Insert(s.Revocations, i, r)
		case r.Revoked.Before(s.Revocations[i].Revoked):
			s.Revocations[i] = r
		}
	}
	if len(s.Certs) > MaxSignedCerts || len(s.Revocations) > MaxSignedRevocations {
		return Signed{}, fmt.Errorf("%w: %d certificates and %d revocations; at most %d and %d fit", ErrBadRoster, len(s.Certs), len(s.Revocations), MaxSignedCerts, MaxSignedRevocations)
	}
	return s, nil
}

func checkCert(user seed.UserPublic, c seed.DeviceCert) error {
	if !c.User.Equal(user) {
		return fmt.Errorf("%w: the certificate of device %d is user %s's, not %s's", ErrBadRoster, c.Index, c.User.Short(), user.Short())
	}
	if err := c.Verify(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRoster, err)
	}
	if len(c.Marshal()) > maxCertBytes {
		return fmt.Errorf("%w: a certificate longer than %d bytes", ErrBadRoster, maxCertBytes)
	}
	return nil
}

func checkRev(user seed.UserPublic, r seed.Revocation) error {
	if !r.User.Equal(user) {
		return fmt.Errorf("%w: the revocation of device %d is signed by user %s, not %s", ErrBadRoster, r.Index, r.User.Short(), user.Short())
	}
	if err := r.Verify(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRoster, err)
	}
	return nil
}

// Marshal returns the binary form. s must come from NewSigned or
// ParseSigned.
func (s Signed) Marshal() []byte {
	b := make([]byte, 0, 64+len(s.Certs)*300+len(s.Revocations)*seed.RevocationSize)
	b = append(b, signedMagic...)
	b = append(b, signedVersion)
	b = append(b, s.User[:]...)
	b = append(b, byte(len(s.Certs)))
	for _, c := range s.Certs {
		cb := c.Marshal()
		b = binary.BigEndian.AppendUint16(b, uint16(len(cb)))
		b = append(b, cb...)
	}
	b = append(b, byte(len(s.Revocations)))
	for _, r := range s.Revocations {
		b = append(b, r.Marshal()...)
	}
	return b
}

// Digest is the SHA-256 of the binary form: two devices holding the same
// records have the same digest.
func (s Signed) Digest() [32]byte { return sha256.Sum256(s.Marshal()) }

// Cert returns the certificate of device d in s.
func (s Signed) Cert(d seed.DevicePublic) (seed.DeviceCert, bool) {
	for _, c := range s.Certs {
		if c.Device.Equal(d) {
			return c, true
		}
	}
	return seed.DeviceCert{}, false
}

// Revoked returns the revocation of device d in s.
func (s Signed) Revoked(d seed.DevicePublic) (seed.Revocation, bool) {
	for _, r := range s.Revocations {
		if r.Device.Equal(d) {
			return r, true
		}
	}
	return seed.Revocation{}, false
}

// ParseSigned reads a signed roster and verifies every record in it. It
// refuses, wrapping ErrBadRoster, a document over MaxSignedSize, another
// version, records out of order or repeated, records of another user, bad
// signatures and trailing bytes.
func ParseSigned(b []byte) (Signed, error) {
	s, err := parseSigned(b)
	if err != nil {
		return Signed{}, fmt.Errorf("%w: %w", ErrBadRoster, err)
	}
	return s, nil
}

func parseSigned(b []byte) (Signed, error) {
	if len(b) > MaxSignedSize {
		return Signed{}, fmt.Errorf("%d bytes; a signed roster is at most %d", len(b), MaxSignedSize)
	}
	if !bytes.HasPrefix(b, []byte(signedMagic)) {
		return Signed{}, fmt.Errorf("it does not start with %q", signedMagic)
	}
	b = b[len(signedMagic):]
	if len(b) < 1+32+1 {
		return Signed{}, errors.New("it ends early")
	}
	if b[0] != signedVersion {
		return Signed{}, fmt.Errorf("version %d; this kith reads version %d", b[0], signedVersion)
	}
	var s Signed
	copy(s.User[:], b[1:33])
	n := int(b[33])
	b = b[34:]
	if n > MaxSignedCerts {
		return Signed{}, fmt.Errorf("%d certificates; at most %d fit", n, MaxSignedCerts)
	}
	for i := range n {
		if len(b) < 2 {
			return Signed{}, errors.New("it ends inside a certificate")
		}
		l := int(binary.BigEndian.Uint16(b))
		if l > maxCertBytes || len(b) < 2+l {
			return Signed{}, fmt.Errorf("certificate %d of %d bytes does not fit", i, l)
		}
		c, err := seed.ParseDeviceCert(b[2 : 2+l])
		if err != nil {
			return Signed{}, err
		}
		if err := checkCert(s.User, c); err != nil {
			return Signed{}, err
		}
		if i > 0 && bytes.Compare(s.Certs[i-1].Device[:], c.Device[:]) >= 0 {
			return Signed{}, errors.New("certificates out of order or repeated")
		}
		s.Certs = append(s.Certs, c)
		b = b[2+l:]
	}
	if len(b) < 1 {
		return Signed{}, errors.New("it ends before the revocations")
	}
	n = int(b[0])
	b = b[1:]
	if n > MaxSignedRevocations {
		return Signed{}, fmt.Errorf("%d revocations; at most %d fit", n, MaxSignedRevocations)
	}
	if len(b) != n*seed.RevocationSize {
		return Signed{}, fmt.Errorf("%d bytes for %d revocations of %d", len(b), n, seed.RevocationSize)
	}
	for i := range n {
		r, err := seed.ParseRevocation(b[i*seed.RevocationSize : (i+1)*seed.RevocationSize])
		if err != nil {
			return Signed{}, err
		}
		if err := checkRev(s.User, r); err != nil {
			return Signed{}, err
		}
		if i > 0 && bytes.Compare(s.Revocations[i-1].Device[:], r.Device[:]) >= 0 {
			return Signed{}, errors.New("revocations out of order or repeated")
		}
		s.Revocations = append(s.Revocations, r)
	}
	return s, nil
}

// SignedOf returns user's signed roster as r holds it: the certificate of
// every device of user that r has one for, revoked or not, and every
// revocation signed by user. For this roster's own user it also includes
// the local device's certificate, local (may be nil).
func (r *Roster) SignedOf(user seed.UserPublic, local []byte) (Signed, error) {
	var certs []seed.DeviceCert
	raw := [][]byte{}
	if local != nil && user.Equal(r.self) {
		raw = append(raw, local)
	}
	for _, d := range r.DevicesOf(user) {
		if len(d.Cert) > 0 {
			raw = append(raw, d.Cert)
		}
	}
	for _, b := range raw {
		c, err := seed.ParseDeviceCert(b)
		if err != nil || !c.User.Equal(user) {
			continue // a record stored before checks existed: not ours to pass on
		}
		certs = append(certs, c)
	}
	var revs []seed.Revocation
	for _, rev := range r.revoked {
		if rev.User.Equal(user) {
			revs = append(revs, rev)
		}
	}
	// Past the limits, the newest records are kept. (Merges keep within
	// them; only pairings in person can go past.)
	if len(certs) > MaxSignedCerts {
		slices.SortFunc(certs, func(a, b seed.DeviceCert) int { return b.Issued.Compare(a.Issued) })
		certs = certs[:MaxSignedCerts]
	}
	if len(revs) > MaxSignedRevocations {
		slices.SortFunc(revs, func(a, b seed.Revocation) int { return b.Revoked.Compare(a.Revoked) })
		revs = revs[:MaxSignedRevocations]
	}
	return NewSigned(user, certs, revs)
}

// Revocation returns the revocation of device d, if [Roster.Revoked]
// counts it.
func (r *Roster) Revocation(d seed.DevicePublic) (seed.Revocation, bool) {
	if !r.Revoked(d) {
		return seed.Revocation{}, false
	}
	return r.revoked[d], true
}
