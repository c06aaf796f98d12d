package pairing

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"
	"unicode"

	"github.com/kith-project/kith/seed"
)

// Invite constants. The layout they describe is in the package comment.
const (
	// InviteVersion is the version this package makes. It also reads
	// version 1 (InviteVersion1).
	InviteVersion = 2
	// InviteVersion1 is the first, signed version, still read.
	InviteVersion1 = 1
	// MaxAddrs is the most addresses an invite of InviteVersion carries.
	MaxAddrs = 3
	// MaxAddrsV1 is the most addresses a version 1 invite carries.
	MaxAddrsV1 = 8
	// SecretSize is the size of an invite's one-time secret: 128 bits.
	SecretSize = 16
	// UserTagSize is the size of a version 2 invite's user tag: the first
	// bytes of the user ID.
	UserTagSize = 4
	// CodePrefix starts every invite code of InviteVersion.
	CodePrefix = "KITH2:"
	// CodePrefixV1 starts every version 1 invite code.
	CodePrefixV1 = "KITH1:"

	// Version 1.
	headerLen = 1 + 32 + 32 + SecretSize + 4 + 1 // version … address count
	sigLen    = ed25519.SignatureSize
	addr4Len  = 1 + 4 + 2
	addr6Len  = 1 + 16 + 2
	// minInviteLen and maxInviteLen bound the binary form: one IPv4 address,
	// or MaxAddrsV1 IPv6 addresses.
	minInviteLen = headerLen + addr4Len + sigLen
	maxInviteLen = headerLen + MaxAddrsV1*addr6Len + sigLen

	// Version 2.
	headerLenV2 = 32 + UserTagSize + SecretSize + 4 + 1 // device … address counts
	checkLen    = 4
	addr4LenV2  = 4 + 2
	addr6LenV2  = 16 + 2
	minInviteV2 = headerLenV2 + addr4LenV2 + checkLen
	maxInviteV2 = headerLenV2 + MaxAddrs*addr6LenV2 + checkLen
	// maxPastedLen bounds what ParseInvite looks at before removing
	// whitespace, so that a huge paste costs nothing.
	maxPastedLen = 4096

	familyIPv4 = 4
	familyIPv6 = 6
)

// Labels for what the device key signs; versioned, NUL-terminated so that no
// label is a prefix of another.
const (
	inviteSigLabel   = "kith/v1/invite\x00"
	inviteCheckLabel = "kith/v2/invite-check\x00"
)

// b32 is RFC 4648 base32 without padding: upper-case letters and the digits
// 2–7, all of them in the QR code alphanumeric set.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Secret is an invite's 128-bit one-time secret. Whoever scans the invite
// learns it and proves so in the pairing handshake.
//
// A Secret never prints: every fmt verb, String, GoString, slog and
// encoding.TextMarshaler (so JSON) show "Secret(redacted)". Its bytes leave
// the program only inside an invite code.
type Secret [SecretSize]byte

const redacted = "Secret(redacted)"

// String returns "Secret(redacted)".
func (Secret) String() string { return redacted }

// GoString returns "Secret(redacted)".
func (Secret) GoString() string { return redacted }

// Format writes "Secret(redacted)" for every verb, so that %x and %d do not
// reveal the bytes either.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue keeps the secret out of structured logs.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText keeps the secret out of JSON and other text encodings.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Invite is what `kith pair show` offers and `kith pair scan` reads: which
// device to reach, where, a one-time secret, until when. See the package
// comment for its binary and text forms, in both versions.
//
// Version 1 carries the full user ID and the device's signature; version 2
// carries a 4-byte user tag and a checksum instead. In neither is the user
// more than claimed: the device certificate exchanged once the pairing is
// done is what binds Device to User.
type Invite struct {
	Version uint8             // InviteVersion, or InviteVersion1 for an old invite
	User    seed.UserPublic   // version 1: the user's ed25519 public key; zero in version 2
	UserTag [UserTagSize]byte // the first bytes of the user ID, in both versions
	Device  seed.DevicePublic // the device's ed25519 public key
	Addrs   []netip.AddrPort  // 1..MaxAddrs (version 1: MaxAddrsV1) addresses where the device listens
	Secret  Secret            // one-time secret; never printed
	Expires time.Time         // whole seconds, UTC
	Sig     [64]byte          // version 1: ed25519 by Device over inviteSigLabel || the bytes before Sig
}

// MatchesUser reports whether the invite's user is user: the full user ID
// in version 1, the user tag in version 2.
func (i Invite) MatchesUser(user seed.UserPublic) bool {
	if i.Version == InviteVersion1 {
		return subtle.ConstantTimeCompare(i.User[:], user[:]) == 1
	}
	return subtle.ConstantTimeCompare(i.UserTag[:], user[:UserTagSize]) == 1
}

// NewInvite makes an invite of InviteVersion for the device whose private
// key is device, on behalf of user, reachable at addrs, valid for ttl from
// now, with a fresh random secret.
//
// Addresses are unmapped (::ffff:a.b.c.d becomes a.b.c.d) and duplicates
// dropped; each must be a routable unicast address with a port, without an
// IPv6 zone (a peer cannot use the zone of another machine). To keep the QR
// code small, the invite keeps the first MaxAddrs of them, in their order,
// and IPv6 addresses only when there is no IPv4 one.
func NewInvite(user seed.UserPublic, device ed25519.PrivateKey, addrs []netip.AddrPort, ttl time.Duration, now time.Time) (Invite, error) {
	i, err := newInvite(InviteVersion, user, device, addrs, ttl, now)
	if err != nil {
		return Invite{}, err
	}
	var v4, v6 []netip.AddrPort
	for _, ap := range i.Addrs {
		if ap.Addr().Is4() {
			v4 = append(v4, ap)
		} else {
			v6 = append(v6, ap)
		}
	}
	if len(v4) > 0 {
		v6 = nil
	}
	i.Addrs = append(v4, v6...)
	if len(i.Addrs) > MaxAddrs {
		i.Addrs = i.Addrs[:MaxAddrs]
	}
	return i, nil
}

// newInvite makes an invite of the given version; a version 1 invite is
// signed. NewInvite trims the addresses of a version 2 invite.
func newInvite(version uint8, user seed.UserPublic, device ed25519.PrivateKey, addrs []netip.AddrPort, ttl time.Duration, now time.Time) (Invite, error) {
	if len(device) != ed25519.PrivateKeySize {
		return Invite{}, fmt.Errorf("pairing: making an invite: device key is %d bytes, want %d", len(device), ed25519.PrivateKeySize)
	}
	if ttl < time.Second {
		return Invite{}, fmt.Errorf("pairing: making an invite: lifetime %v is shorter than one second", ttl)
	}
	i := Invite{Version: version}
	copy(i.UserTag[:], user[:])
	if version == InviteVersion1 {
		i.User = user
	}
	copy(i.Device[:], device.Public().(ed25519.PublicKey))
	for _, ap := range addrs {
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if err := checkAddr(ap); err != nil {
			return Invite{}, fmt.Errorf("pairing: making an invite: %w", err)
		}
		if !containsAddr(i.Addrs, ap) {
			i.Addrs = append(i.Addrs, ap)
		}
	}
	if len(i.Addrs) == 0 || (version == InviteVersion1 && len(i.Addrs) > MaxAddrsV1) {
		return Invite{}, fmt.Errorf("pairing: making an invite: %d addresses, want 1 to %d", len(i.Addrs), MaxAddrsV1)
	}
	exp := now.Add(ttl).Unix()
	if exp < 0 || exp > 1<<32-1 {
		return Invite{}, fmt.Errorf("pairing: making an invite: expiry %d is outside the invite's 32-bit range", exp)
	}
	i.Expires = time.Unix(exp, 0).UTC()
	_, _ = rand.Read(i.Secret[:]) // never fails (crypto/rand, Go ≥ 1.24)
	if version == InviteVersion1 {
		i.sign(device)
	}
	return i, nil
}

func containsAddr(list []netip.AddrPort, ap netip.AddrPort) bool {
	for _, x := range list {
		if x == ap {
			return true
		}
	}
	return false
}

// checkAddr says why ap cannot go in an invite, or returns nil.
func checkAddr(ap netip.AddrPort) error {
	a := ap.Addr()
	switch {
	case !a.IsValid():
		return errors.New("an address is empty")
	case a.Zone() != "":
		return fmt.Errorf("address %v has an IPv6 zone, which a peer cannot use", ap)
	case a.Is4In6():
		return fmt.Errorf("address %v is an IPv4-mapped IPv6 address: write it as IPv4", ap)
	case a.IsUnspecified() || a.IsMulticast():
		return fmt.Errorf("address %v cannot be dialled", ap)
	case ap.Port() == 0:
		return fmt.Errorf("address %v has no port", ap)
	}
	return nil
}

// sign fills in i.Sig with the device key (version 1).
func (i *Invite) sign(device ed25519.PrivateKey) {
	copy(i.Sig[:], ed25519.Sign(device, signedMessage(i.appendUnsigned(nil))))
}

func signedMessage(unsigned []byte) []byte {
	return append([]byte(inviteSigLabel), unsigned...)
}

// checksum is the version 2 check: the first checkLen bytes of
// SHA-256(inviteCheckLabel || body).
func checksum(body []byte) [checkLen]byte {
	h := sha256.New()
	h.Write([]byte(inviteCheckLabel))
	h.Write(body)
	return [checkLen]byte(h.Sum(nil))
}

// appendUnsigned appends every field but the signature or checksum, in the
// binary layout of the invite's version.
func (i Invite) appendUnsigned(b []byte) []byte {
	if i.Version != InviteVersion1 {
		return i.appendV2(b)
	}
	b = append(b, i.Version)
	b = append(b, i.User[:]...)
	b = append(b, i.Device[:]...)
	b = append(b, i.Secret[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(i.Expires.Unix()))
	b = append(b, byte(len(i.Addrs)))
	for _, ap := range i.Addrs {
		if a := ap.Addr(); a.Is4() {
			a4 := a.As4()
			b = append(b, familyIPv4)
			b = append(b, a4[:]...)
		} else {
			a16 := a.As16()
			b = append(b, familyIPv6)
			b = append(b, a16[:]...)
		}
		b = binary.BigEndian.AppendUint16(b, ap.Port())
	}
	return b
}

// appendV2 appends the version 2 body: the address counts say which
// addresses are IPv4 (written first) and which IPv6.
func (i Invite) appendV2(b []byte) []byte {
	b = append(b, i.Device[:]...)
	b = append(b, i.UserTag[:]...)
	b = append(b, i.Secret[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(i.Expires.Unix()))
	n4, n6 := 0, 0
	for _, ap := range i.Addrs {
		if ap.Addr().Is4() {
			n4++
		} else {
			n6++
		}
	}
	b = append(b, byte(n4<<4|n6&0x0f))
	for _, want4 := range []bool{true, false} {
		for _, ap := range i.Addrs {
			if a := ap.Addr(); a.Is4() && want4 {
				a4 := a.As4()
				b = append(b, a4[:]...)
			} else if !a.Is4() && !want4 {
				a16 := a.As16()
				b = append(b, a16[:]...)
			} else {
				continue
			}
			b = binary.BigEndian.AppendUint16(b, ap.Port())
		}
	}
	return b
}

// Bytes returns the binary form, the signature (version 1) or checksum
// (version 2) included. The pairing transcript hashes it.
func (i Invite) Bytes() []byte {
	b := i.appendUnsigned(make([]byte, 0, maxInviteLen))
	if i.Version != InviteVersion1 {
		c := checksum(b)
		return append(b, c[:]...)
	}
	return append(b, i.Sig[:]...)
}

// Encode returns the invite code: "KITH2:" ("KITH1:" for version 1) and the
// base32 of Bytes. Every character is in the QR code alphanumeric set.
func (i Invite) Encode() string {
	prefix := CodePrefix
	if i.Version == InviteVersion1 {
		prefix = CodePrefixV1
	}
	return prefix + b32.EncodeToString(i.Bytes())
}

// String describes the invite for people and logs, without its secret.
func (i Invite) String() string {
	return fmt.Sprintf("invite v%d user %s device %s addrs %v expires %s",
		i.Version, shortHex(i.UserTag[:]), shortHex(i.Device[:]), i.Addrs, i.Expires.UTC().Format(time.RFC3339))
}

// LogValue describes the invite in structured logs, without its secret.
func (i Invite) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("user", shortHex(i.UserTag[:])),
		slog.String("device", shortHex(i.Device[:])),
		slog.Any("addrs", i.Addrs),
		slog.Time("expires", i.Expires),
	)
}

func shortHex(b []byte) string { return hex.EncodeToString(b[:4]) + "…" }

// Equal reports whether i and j have the same binary form, in constant time.
func (i Invite) Equal(j Invite) bool {
	return subtle.ConstantTimeCompare(i.Bytes(), j.Bytes()) == 1
}

// Verify checks that the invite is well formed, intact (signed by its device
// in version 1, with a matching checksum in version 2) and not expired at
// now. Its errors wrap ErrMalformed, ErrTampered or ErrExpired.
//
// Verify recomputes the checksum of a version 2 invite from its fields, so
// that it cannot fail for an Invite decoded from a code: decoding has checked
// the checksum that the code carried.
func (i Invite) Verify(now time.Time) error {
	if err := i.check(); err != nil {
		return err
	}
	if i.Version == InviteVersion1 && !ed25519.Verify(i.Device[:], signedMessage(i.appendUnsigned(nil)), i.Sig[:]) {
		return refuse(ErrTampered, "the invite was altered or damaged (its signature does not verify): ask for a fresh code")
	}
	if !now.Before(i.Expires) {
		return expired(i.Expires, now, "the invite")
	}
	return nil
}

func expired(at, now time.Time, whose string) error {
	layout := "15:04 UTC"
	if now.Sub(at) > 12*time.Hour || at.Sub(now) > 12*time.Hour {
		layout = "2006-01-02 15:04 UTC"
	}
	return refuse(ErrExpired, "%s expired at %s: ask for a fresh code", whose, at.UTC().Format(layout))
}

// check verifies what the binary form cannot express or this version does not
// accept.
func (i Invite) check() error {
	maxAddrs := MaxAddrs
	switch i.Version {
	case InviteVersion:
		for k := 1; k < len(i.Addrs); k++ {
			if !i.Addrs[k-1].Addr().Is4() && i.Addrs[k].Addr().Is4() {
				return refuse(ErrMalformed, "not a kith invite: its IPv6 addresses must come after its IPv4 ones")
			}
		}
	case InviteVersion1:
		maxAddrs = MaxAddrsV1
		if subtle.ConstantTimeCompare(i.UserTag[:], i.User[:UserTagSize]) != 1 {
			return refuse(ErrMalformed, "not a kith invite: its user tag is not its user ID's")
		}
	default:
		return refuse(ErrMalformed, "not a kith invite: version %d is not supported (this kith reads versions 1 and %d): update kith on one of the devices", i.Version, InviteVersion)
	}
	if n := len(i.Addrs); n == 0 || n > maxAddrs {
		return refuse(ErrMalformed, "not a kith invite: it has %d addresses, want 1 to %d", n, maxAddrs)
	}
	for _, ap := range i.Addrs {
		if err := checkAddr(ap); err != nil {
			return refuse(ErrMalformed, "not a kith invite: %v", err)
		}
	}
	if e := i.Expires.Unix(); e < 0 || e > 1<<32-1 {
		return refuse(ErrMalformed, "not a kith invite: expiry %d is out of range", e)
	}
	return nil
}

// ParseInvite reads an invite code as printed by Encode, of either version,
// and verifies it at now. It forgives what copying and typing do to a code:
// surrounding and embedded white space (line breaks included), lower case,
// and trailing "=" padding. Its errors wrap ErrMalformed, ErrTampered or
// ErrExpired; none of them quotes the code, which holds the secret.
func ParseInvite(code string, now time.Time) (Invite, error) {
	i, err := decodeInvite(code)
	if err != nil {
		return Invite{}, err
	}
	if err := i.Verify(now); err != nil {
		return Invite{}, err
	}
	return i, nil
}

// normalize removes white space, upper-cases ASCII letters and drops
// trailing padding.
func normalize(code string) string {
	code = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsSpace(r):
			return -1
		case 'a' <= r && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, code)
	return strings.TrimRight(code, "=")
}

// decodeInvite turns a code into an Invite, checking its form and, for
// version 2, its checksum, but neither a version 1 signature nor the expiry.
func decodeInvite(code string) (Invite, error) {
	if len(code) > maxPastedLen {
		return Invite{}, refuse(ErrMalformed, "not a kith invite: the text is %d bytes, far longer than any invite", len(code))
	}
	code = normalize(code)
	var prefix string
	maxLen := maxInviteLen
	switch {
	case strings.HasPrefix(code, CodePrefix):
		prefix, maxLen = CodePrefix, maxInviteV2
	case strings.HasPrefix(code, CodePrefixV1):
		prefix = CodePrefixV1
	case strings.HasPrefix(code, "KITH"):
		return Invite{}, refuse(ErrMalformed, "not a kith invite: it does not start with %q or %q; it may come from another kith version: update kith on both devices", CodePrefix, CodePrefixV1)
	default:
		return Invite{}, refuse(ErrMalformed, "not a kith invite: it does not start with %q: copy the whole code, or scan the QR code", CodePrefix)
	}
	payload := code[len(prefix):]
	if len(payload) > b32.EncodedLen(maxLen) {
		return Invite{}, refuse(ErrMalformed, "not a kith invite: %d characters after the prefix is more than any invite has", len(payload))
	}
	b, err := b32.DecodeString(payload)
	if err != nil {
		var bad base32.CorruptInputError
		if errors.As(err, &bad) {
			return Invite{}, refuse(ErrMalformed, "not a kith invite: character %d after the prefix is not base32 or the code is cut short: copy the whole code", int64(bad)+1)
		}
		return Invite{}, refuse(ErrMalformed, "not a kith invite: bad base32: copy the whole code")
	}
	// Base32 leaves a few spare bits in the last character; requiring them
	// to be zero makes the text form canonical: one invite, one code.
	if b32.EncodeToString(b) != payload {
		return Invite{}, refuse(ErrMalformed, "not a kith invite: its last character is not canonical base32: copy the whole code")
	}
	if prefix == CodePrefix {
		return unmarshalV2(b)
	}
	return unmarshalInvite(b)
}

// unmarshalV2 reads the version 2 binary form. The checksum is checked
// before anything else, so that a damaged or edited code is "tampered" and
// not "malformed"; then it accepts exactly the bytes that Bytes produces.
func unmarshalV2(b []byte) (Invite, error) {
	if len(b) < minInviteV2 || len(b) > maxInviteV2 {
		return Invite{}, refuse(ErrMalformed, "not a kith invite: %d bytes, want %d to %d: copy the whole code", len(b), minInviteV2, maxInviteV2)
	}
	body, sum := b[:len(b)-checkLen], b[len(b)-checkLen:]
	if want := checksum(body); subtle.ConstantTimeCompare(want[:], sum) != 1 {
		return Invite{}, refuse(ErrTampered, "the invite was altered or damaged (its checksum does not match): copy the whole code, or ask for a fresh one")
	}
	i := Invite{Version: InviteVersion}
	r := body
	r = r[copy(i.Device[:], r):]
	r = r[copy(i.UserTag[:], r):]
	r = r[copy(i.Secret[:], r):]
	i.Expires = time.Unix(int64(binary.BigEndian.Uint32(r)), 0).UTC()
	r = r[4:]
	n4, n6 := int(r[0]>>4), int(r[0]&0x0f)
	r = r[1:]
	if n := n4 + n6; n == 0 || n > MaxAddrs {
		return Invite{}, refuse(ErrMalformed, "not a kith invite: it has %d addresses, want 1 to %d", n, MaxAddrs)
	}
	if len(r) != n4*addr4LenV2+n6*addr6LenV2 {
		return Invite{}, refuse(ErrMalformed, "not a kith invite: its addresses take %d bytes, want %d", len(r), n4*addr4LenV2+n6*addr6LenV2)
	}
	for k := range n4 + n6 {
		var a netip.Addr
		if k < n4 {
			a = netip.AddrFrom4([4]byte(r[:4]))
			r = r[4:]
		} else {
			a = netip.AddrFrom16([16]byte(r[:16]))
			r = r[16:]
		}
		ap := netip.AddrPortFrom(a, binary.BigEndian.Uint16(r))
		r = r[2:]
		if err := checkAddr(ap); err != nil {
			return Invite{}, refuse(ErrMalformed, "not a kith invite: %v", err)
		}
		i.Addrs = append(i.Addrs, ap)
	}
	if subtle.ConstantTimeCompare(i.Bytes(), b) != 1 {
		return Invite{}, refuse(ErrMalformed, "not a kith invite: non-canonical encoding")
	}
	return i, nil
}

// unmarshalInvite reads the version 1 binary form. It accepts exactly the
// bytes that Bytes produces, so that the signature covers every bit of the
// input.
func unmarshalInvite(b []byte) (Invite, error) {
	if len(b) < minInviteLen || len(b) > maxInviteLen {
		return Invite{}, refuse(ErrMalformed, "not a kith invite: %d bytes, want %d to %d: copy the whole code", len(b), minInviteLen, maxInviteLen)
	}
	var i Invite
	i.Version = b[0]
	if i.Version != InviteVersion1 {
		return Invite{}, refuse(ErrMalformed, "not a kith invite: version %d is not supported in a %q code: update kith on one of the devices", i.Version, CodePrefixV1)
	}
	r := b[1:]
	r = r[copy(i.User[:], r):]
	copy(i.UserTag[:], i.User[:])
	r = r[copy(i.Device[:], r):]
	r = r[copy(i.Secret[:], r):]
	i.Expires = time.Unix(int64(binary.BigEndian.Uint32(r)), 0).UTC()
	r = r[4:]
	n := int(r[0])
	r = r[1:]
	if n == 0 || n > MaxAddrsV1 {
		return Invite{}, refuse(ErrMalformed, "not a kith invite: it has %d addresses, want 1 to %d", n, MaxAddrsV1)
	}
	body := r[:len(r)-sigLen]
	for k := range n {
		if len(body) < addr4Len {
			return Invite{}, refuse(ErrMalformed, "not a kith invite: address %d of %d is cut short", k+1, n)
		}
		var a netip.Addr
		switch body[0] {
		case familyIPv4:
			a = netip.AddrFrom4([4]byte(body[1:5]))
			body = body[5:]
		case familyIPv6:
			if len(body) < addr6Len {
				return Invite{}, refuse(ErrMalformed, "not a kith invite: address %d of %d is cut short", k+1, n)
			}
			a = netip.AddrFrom16([16]byte(body[1:17]))
			body = body[17:]
		default:
			return Invite{}, refuse(ErrMalformed, "not a kith invite: address %d has unknown family %d", k+1, body[0])
		}
		ap := netip.AddrPortFrom(a, binary.BigEndian.Uint16(body))
		body = body[2:]
		if err := checkAddr(ap); err != nil {
			return Invite{}, refuse(ErrMalformed, "not a kith invite: %v", err)
		}
		i.Addrs = append(i.Addrs, ap)
	}
	if len(body) != 0 {
		return Invite{}, refuse(ErrMalformed, "not a kith invite: %d unexpected bytes after the addresses", len(body))
	}
	copy(i.Sig[:], r[len(r)-sigLen:])
	// Belt and braces: what we read must be what we would write.
	if subtle.ConstantTimeCompare(i.Bytes(), b) != 1 {
		return Invite{}, refuse(ErrMalformed, "not a kith invite: non-canonical encoding")
	}
	return i, nil
}
