package seed

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of a device certificate's variable fields.
const (
	MaxNameBytes = 64 // bytes of UTF-8 in a device name
	MaxRoles     = 8  // roles in one certificate
	MaxRoleBytes = 32 // bytes in one role
)

const (
	certMagic     = "kith-cert"
	revokeMagic   = "kith-revoke"
	certVersion   = 1
	revokeVersion = 1
	// The signed context of each record kind: the kind is inside what is
	// signed, so that no signature can be moved from one kind to another.
	certContext   = "kith/v1/device-cert\x00"
	revokeContext = "kith/v1/revocation\x00"
	// certFixedSize is a certificate with an empty name and no roles.
	certFixedSize = len(certMagic) + 1 + 32 + 32 + 4 + 32 + 1 + 1 + 8 + ed25519.SignatureSize
	// RevocationSize is the length of every version 1 revocation.
	RevocationSize = len(revokeMagic) + 1 + 32 + 32 + 4 + 8 + ed25519.SignatureSize
)

// Errors that callers of the parse and verify functions can branch on. The
// returned errors wrap them with what was wrong.
var (
	// ErrMalformed means that the bytes are not a well-formed record.
	ErrMalformed = errors.New("malformed")
	// ErrUnsupportedVersion means a record of a version this kith does not
	// know.
	ErrUnsupportedVersion = errors.New("unsupported version")
	// ErrWrongRecord means a record of another kind, such as a revocation
	// given where a device certificate was expected.
	ErrWrongRecord = errors.New("wrong kind of record")
	// ErrBadSignature means that the signature is not the user key's.
	ErrBadSignature = errors.New("bad signature")
)

// DeviceCert is the user key's statement that a device belongs to the user:
// its signing key, index, archive recipient, name and roles. Its binary form
// is documented in the package comment.
type DeviceCert struct {
	User      UserPublic       // the signing user
	Device    DevicePublic     // the device's signing key
	Index     uint32           // the device's derivation index, at most MaxDeviceIndex
	Archive   ArchiveRecipient // the device's archive key
	Name      string           // up to MaxNameBytes of UTF-8, no control characters
	Roles     []string         // up to MaxRoles distinct roles of [a-z0-9._-], each up to MaxRoleBytes
	Issued    time.Time        // whole seconds, UTC
	Signature [64]byte         // by User over the context and the body
}

// Revocation is the user key's statement that a device no longer belongs to
// the user. Its binary form is documented in the package comment.
type Revocation struct {
	User      UserPublic   // the signing user
	Device    DevicePublic // the revoked device's signing key
	Index     uint32       // the revoked device's index
	Revoked   time.Time    // whole seconds, UTC
	Signature [64]byte     // by User over the context and the body
}

// IssueDeviceCert signs c with the user key and returns it with User and
// Signature filled in. Issued is truncated to whole seconds in UTC; a zero
// Issued means now. If c.User is set it must be this key's.
func (u UserKey) IssueDeviceCert(c DeviceCert) (DeviceCert, error) {
	if u.key == nil {
		return DeviceCert{}, errors.New("seed: issuing a device certificate: the user key is the zero UserKey")
	}
	pub := u.Public()
	if !c.User.isZero() && !c.User.Equal(pub) {
		return DeviceCert{}, fmt.Errorf("seed: issuing a device certificate: it names user %s but the key is user %s's", c.User, pub)
	}
	c.User = pub
	c.Issued = wholeSeconds(c.Issued)
	c.Roles = normalizeRoles(c.Roles)
	if err := c.check(); err != nil {
		return DeviceCert{}, fmt.Errorf("seed: issuing a device certificate: %w", err)
	}
	copy(c.Signature[:], u.Sign(c.signed()))
	return c, nil
}

// Revoke signs r with the user key and returns it with User and Signature
// filled in. Revoked is truncated to whole seconds in UTC; a zero Revoked
// means now. If r.User is set it must be this key's.
func (u UserKey) Revoke(r Revocation) (Revocation, error) {
	if u.key == nil {
		return Revocation{}, errors.New("seed: signing a revocation: the user key is the zero UserKey")
	}
	pub := u.Public()
	if !r.User.isZero() && !r.User.Equal(pub) {
		return Revocation{}, fmt.Errorf("seed: signing a revocation: it names user %s but the key is user %s's", r.User, pub)
	}
	r.User = pub
	r.Revoked = wholeSeconds(r.Revoked)
	if err := r.check(); err != nil {
		return Revocation{}, fmt.Errorf("seed: signing a revocation: %w", err)
	}
	copy(r.Signature[:], u.Sign(r.signed()))
	return r, nil
}

func wholeSeconds(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return time.Unix(t.Unix(), 0).UTC()
}

// normalizeRoles copies roles, so that the certificate does not share the
// caller's slice, and makes an empty list nil, as parsing does.
func normalizeRoles(roles []string) []string {
	if len(roles) == 0 {
		return nil
	}
	return slices.Clone(roles)
}

// check reports, wrapping ErrMalformed, a field that cannot be encoded or
// is not allowed.
func (c DeviceCert) check() error {
	switch {
	case c.User.isZero():
		return fmt.Errorf("%w: the user key is all zeros", ErrMalformed)
	case c.Device.isZero():
		return fmt.Errorf("%w: the device key is all zeros", ErrMalformed)
	case c.Archive.isZero():
		return fmt.Errorf("%w: the archive recipient is all zeros", ErrMalformed)
	case c.Index > MaxDeviceIndex:
		return fmt.Errorf("%w: device index %d is above %d", ErrMalformed, c.Index, MaxDeviceIndex)
	}
	if err := checkTime("issue", c.Issued); err != nil {
		return err
	}
	if err := checkName(c.Name); err != nil {
		return err
	}
	if len(c.Roles) > MaxRoles {
		return fmt.Errorf("%w: %d roles; a certificate has at most %d", ErrMalformed, len(c.Roles), MaxRoles)
	}
	for i, r := range c.Roles {
		if err := checkRole(r); err != nil {
			return err
		}
		if slices.Contains(c.Roles[:i], r) {
			return fmt.Errorf("%w: role %q appears twice", ErrMalformed, r)
		}
	}
	return nil
}

// maxUnix is the last second of the year 9999, the latest time a record may
// carry.
const maxUnix = 253402300799

// checkTime checks that a record's time is from 1970 to 9999, so that it
// has one encoding.
func checkTime(what string, t time.Time) error {
	if s := t.Unix(); s < 0 || s > maxUnix {
		return fmt.Errorf("%w: the %s time %d is not between 1970 and 9999", ErrMalformed, what, s)
	}
	return nil
}

func checkName(name string) error {
	if len(name) > MaxNameBytes {
		return fmt.Errorf("%w: the device name is %d bytes; at most %d are allowed", ErrMalformed, len(name), MaxNameBytes)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: the device name is not valid UTF-8", ErrMalformed)
	}
	for _, r := range name {
		// Control characters and bidirectional overrides could rewrite a
		// terminal or disguise a name.
		if unicode.IsControl(r) || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') {
			return fmt.Errorf("%w: the device name contains the control character %U", ErrMalformed, r)
		}
	}
	return nil
}

func checkRole(role string) error {
	if role == "" || len(role) > MaxRoleBytes {
		return fmt.Errorf("%w: a role is 1 to %d bytes, not %d", ErrMalformed, MaxRoleBytes, len(role))
	}
	for i := 0; i < len(role); i++ {
		c := role[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: role %q may contain only a-z, 0-9, '.', '_' and '-'", ErrMalformed, role)
		}
	}
	return nil
}

// body appends the certificate's bytes up to the signature to b. c must
// have passed check.
func (c DeviceCert) body(b []byte) []byte {
	b = append(b, certMagic...)
	b = append(b, certVersion)
	b = append(b, c.User[:]...)
	b = append(b, c.Device[:]...)
	b = binary.BigEndian.AppendUint32(b, c.Index)
	b = append(b, c.Archive[:]...)
	b = append(b, byte(len(c.Name)))
	b = append(b, c.Name...)
	b = append(b, byte(len(c.Roles)))
	for _, r := range c.Roles {
		b = append(b, byte(len(r)))
		b = append(b, r...)
	}
	return binary.BigEndian.AppendUint64(b, uint64(c.Issued.Unix()))
}

// signed returns the message the signature covers.
func (c DeviceCert) signed() []byte { return c.body([]byte(certContext)) }

// Marshal returns the certificate's binary form. It returns nil for a
// certificate whose fields IssueDeviceCert would refuse.
func (c DeviceCert) Marshal() []byte {
	if c.check() != nil {
		return nil
	}
	return append(c.body(nil), c.Signature[:]...)
}

// Verify checks that the certificate's fields are allowed and that it is
// signed by c.User.
func (c DeviceCert) Verify() error {
	if err := c.check(); err != nil {
		return fmt.Errorf("seed: checking a device certificate: %w", err)
	}
	if !c.User.Verify(c.signed(), c.Signature[:]) {
		return fmt.Errorf("seed: checking the certificate of device %d: %w: user %s did not sign it; it is forged or damaged", c.Index, ErrBadSignature, c.User)
	}
	return nil
}

// ParseDeviceCert reads a certificate in binary form and verifies it. It
// refuses another version or kind of record, bad lengths, trailing bytes,
// fields that are not allowed and a bad signature.
func ParseDeviceCert(b []byte) (DeviceCert, error) {
	c, err := decodeDeviceCert(b)
	if err != nil {
		return DeviceCert{}, fmt.Errorf("seed: reading a device certificate: %w", err)
	}
	if err := c.Verify(); err != nil {
		return DeviceCert{}, err
	}
	return c, nil
}

func decodeDeviceCert(b []byte) (DeviceCert, error) {
	if err := checkHeader(b, certMagic, certVersion, "a device certificate", revokeMagic, "a revocation"); err != nil {
		return DeviceCert{}, err
	}
	if len(b) < certFixedSize {
		return DeviceCert{}, fmt.Errorf("%w: %d bytes is too short; a certificate is at least %d", ErrMalformed, len(b), certFixedSize)
	}
	d := decoder{b: b[len(certMagic)+1:]}
	var c DeviceCert
	d.read(c.User[:])
	d.read(c.Device[:])
	c.Index = d.uint32()
	d.read(c.Archive[:])
	nameLen := d.byte()
	if nameLen > MaxNameBytes {
		return DeviceCert{}, fmt.Errorf("%w: the name length is %d bytes; at most %d are allowed", ErrMalformed, nameLen, MaxNameBytes)
	}
	c.Name = string(d.next(int(nameLen)))
	nroles := d.byte()
	if nroles > MaxRoles {
		return DeviceCert{}, fmt.Errorf("%w: %d roles; a certificate has at most %d", ErrMalformed, nroles, MaxRoles)
	}
	for range nroles {
		n := d.byte()
		if d.err == nil && (n == 0 || n > MaxRoleBytes) {
			return DeviceCert{}, fmt.Errorf("%w: a role is 1 to %d bytes, not %d", ErrMalformed, MaxRoleBytes, n)
		}
		c.Roles = append(c.Roles, string(d.next(int(n))))
	}
	c.Issued = time.Unix(int64(d.uint64()), 0).UTC()
	d.read(c.Signature[:])
	if d.err != nil {
		return DeviceCert{}, fmt.Errorf("%w: the certificate ends early: %d bytes are too few for the lengths it gives", ErrMalformed, len(b))
	}
	if len(d.b) > 0 {
		return DeviceCert{}, fmt.Errorf("%w: %d bytes follow the signature", ErrMalformed, len(d.b))
	}
	if err := c.check(); err != nil {
		return DeviceCert{}, err
	}
	return c, nil
}

// check reports, wrapping ErrMalformed, a field that is not allowed.
func (r Revocation) check() error {
	switch {
	case r.User.isZero():
		return fmt.Errorf("%w: the user key is all zeros", ErrMalformed)
	case r.Device.isZero():
		return fmt.Errorf("%w: the device key is all zeros", ErrMalformed)
	case r.Index > MaxDeviceIndex:
		return fmt.Errorf("%w: device index %d is above %d", ErrMalformed, r.Index, MaxDeviceIndex)
	}
	return checkTime("revocation", r.Revoked)
}

// body appends the revocation's bytes up to the signature to b.
func (r Revocation) body(b []byte) []byte {
	b = append(b, revokeMagic...)
	b = append(b, revokeVersion)
	b = append(b, r.User[:]...)
	b = append(b, r.Device[:]...)
	b = binary.BigEndian.AppendUint32(b, r.Index)
	return binary.BigEndian.AppendUint64(b, uint64(r.Revoked.Unix()))
}

// signed returns the message the signature covers.
func (r Revocation) signed() []byte { return r.body([]byte(revokeContext)) }

// Marshal returns the revocation's binary form, RevocationSize bytes. It
// returns nil for a revocation whose fields Revoke would refuse.
func (r Revocation) Marshal() []byte {
	if r.check() != nil {
		return nil
	}
	return append(r.body(make([]byte, 0, RevocationSize)), r.Signature[:]...)
}

// Verify checks that the revocation's fields are allowed and that it is
// signed by r.User.
func (r Revocation) Verify() error {
	if err := r.check(); err != nil {
		return fmt.Errorf("seed: checking a revocation: %w", err)
	}
	if !r.User.Verify(r.signed(), r.Signature[:]) {
		return fmt.Errorf("seed: checking the revocation of device %d: %w: user %s did not sign it; it is forged or damaged", r.Index, ErrBadSignature, r.User)
	}
	return nil
}

// ParseRevocation reads a revocation in binary form and verifies it.
func ParseRevocation(b []byte) (Revocation, error) {
	r, err := decodeRevocation(b)
	if err != nil {
		return Revocation{}, fmt.Errorf("seed: reading a revocation: %w", err)
	}
	if err := r.Verify(); err != nil {
		return Revocation{}, err
	}
	return r, nil
}

func decodeRevocation(b []byte) (Revocation, error) {
	if err := checkHeader(b, revokeMagic, revokeVersion, "a revocation", certMagic, "a device certificate"); err != nil {
		return Revocation{}, err
	}
	if len(b) != RevocationSize {
		return Revocation{}, fmt.Errorf("%w: %d bytes; a revocation is %d", ErrMalformed, len(b), RevocationSize)
	}
	d := decoder{b: b[len(revokeMagic)+1:]}
	var r Revocation
	d.read(r.User[:])
	d.read(r.Device[:])
	r.Index = d.uint32()
	r.Revoked = time.Unix(int64(d.uint64()), 0).UTC()
	d.read(r.Signature[:])
	if err := r.check(); err != nil {
		return Revocation{}, err
	}
	return r, nil
}

// checkHeader checks the magic and version at the start of b, and names the
// other kind of record if b is one.
func checkHeader(b []byte, magic string, version byte, kind, otherMagic, otherKind string) error {
	if bytes.HasPrefix(b, []byte(otherMagic)) {
		return fmt.Errorf("%w: this is %s, not %s", ErrWrongRecord, otherKind, kind)
	}
	if !bytes.HasPrefix(b, []byte(magic)) {
		return fmt.Errorf("%w: it does not start with %q, so it is not %s", ErrMalformed, magic, kind)
	}
	if len(b) == len(magic) {
		return fmt.Errorf("%w: it ends after %q", ErrMalformed, magic)
	}
	if v := b[len(magic)]; v != version {
		hint := "it is damaged"
		if v > version {
			hint = "a newer kith made it: upgrade kith to read it"
		}
		return fmt.Errorf("%w: %s of version %d; this kith reads version %d, and %s", ErrUnsupportedVersion, kind, v, version, hint)
	}
	return nil
}

// decoder reads fixed-size fields from b. Once b runs out, every read
// returns zeros and err is set.
type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("too short")

func (d *decoder) next(n int) []byte {
	if d.err != nil || len(d.b) < n {
		d.err = errShort
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) read(dst []byte) { copy(dst, d.next(len(dst))) }

func (d *decoder) byte() byte {
	if v := d.next(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) uint32() uint32 {
	if v := d.next(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) uint64() uint64 {
	if v := d.next(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}
