package pairing

import (
	"crypto/ed25519"
	"crypto/rand"
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
	// InviteVersion is the only version this package makes and reads.
	InviteVersion = 1
	// MaxAddrs is the most addresses one invite carries.
	MaxAddrs = 8
	// SecretSize is the size of an invite's one-time secret: 128 bits.
	SecretSize = 16
	// CodePrefix starts every invite code.
	CodePrefix = "KITH1:"

	headerLen = 1 + 32 + 32 + SecretSize + 4 + 1 // version … address count
	sigLen    = ed25519.SignatureSize
	addr4Len  = 1 + 4 + 2
	addr6Len  = 1 + 16 + 2
	// minInviteLen and maxInviteLen bound the binary form: one IPv4 address,
	// or MaxAddrs IPv6 addresses.
	minInviteLen = headerLen + addr4Len + sigLen
	maxInviteLen = headerLen + MaxAddrs*addr6Len + sigLen
	// maxPastedLen bounds what ParseInvite looks at before removing
	// whitespace, so that a huge paste costs nothing.
	maxPastedLen = 4096

	familyIPv4 = 4
	familyIPv6 = 6
)

// Labels for what the device key signs; versioned, NUL-terminated so that no
// label is a prefix of another.
const inviteSigLabel = "kith/v1/invite\x00"

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
// device to reach, where, a one-time secret, until when, signed by the
// device. See the package comment for its binary and text forms.
//
// The User field is only claimed here: the device certificate exchanged once
// the pairing is done is what binds Device to User.
type Invite struct {
	Version uint8             // InviteVersion
	User    seed.UserPublic   // the user's ed25519 public key
	Device  seed.DevicePublic // the device's ed25519 public key; it signs the invite
	Addrs   []netip.AddrPort  // 1..MaxAddrs addresses where the device listens
	Secret  Secret            // one-time secret; never printed
	Expires time.Time         // whole seconds, UTC
	Sig     [64]byte          // ed25519 by Device over inviteSigLabel || the bytes before Sig
}

// NewInvite makes and signs an invite for the device whose private key is
// device, on behalf of user, reachable at addrs, valid for ttl from now, with
// a fresh random secret.
//
// Addresses are unmapped (::ffff:a.b.c.d becomes a.b.c.d) and duplicates
// dropped; each must be a routable unicast address with a port, without an
// IPv6 zone (a peer cannot use the zone of another machine).
func NewInvite(user seed.UserPublic, device ed25519.PrivateKey, addrs []netip.AddrPort, ttl time.Duration, now time.Time) (Invite, error) {
	if len(device) != ed25519.PrivateKeySize {
		return Invite{}, fmt.Errorf("pairing: making an invite: device key is %d bytes, want %d", len(device), ed25519.PrivateKeySize)
	}
	if ttl < time.Second {
		return Invite{}, fmt.Errorf("pairing: making an invite: lifetime %v is shorter than one second", ttl)
	}
	i := Invite{Version: InviteVersion, User: user}
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
	if len(i.Addrs) == 0 || len(i.Addrs) > MaxAddrs {
		return Invite{}, fmt.Errorf("pairing: making an invite: %d addresses, want 1 to %d", len(i.Addrs), MaxAddrs)
	}
	exp := now.Add(ttl).Unix()
	if exp < 0 || exp > 1<<32-1 {
		return Invite{}, fmt.Errorf("pairing: making an invite: expiry %d is outside the invite's 32-bit range", exp)
	}
	i.Expires = time.Unix(exp, 0).UTC()
	_, _ = rand.Read(i.Secret[:]) // never fails (crypto/rand, Go ≥ 1.24)
	i.sign(device)
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

// sign fills in i.Sig with the device key.
func (i *Invite) sign(device ed25519.PrivateKey) {
	copy(i.Sig[:], ed25519.Sign(device, signedMessage(i.appendUnsigned(nil))))
}

func signedMessage(unsigned []byte) []byte {
	return append([]byte(inviteSigLabel), unsigned...)
}

// appendUnsigned appends every field but the signature, in the binary layout.
func (i Invite) appendUnsigned(b []byte) []byte {
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

// Bytes returns the binary form, the signature included. The pairing
// transcript hashes it.
func (i Invite) Bytes() []byte {
	b := i.appendUnsigned(make([]byte, 0, maxInviteLen))
	return append(b, i.Sig[:]...)
}

// Encode returns the invite code: "KITH1:" and the base32 of Bytes. Every
// character is in the QR code alphanumeric set.
func (i Invite) Encode() string {
	return CodePrefix + b32.EncodeToString(i.Bytes())
}

// String describes the invite for people and logs, without its secret.
func (i Invite) String() string {
	return fmt.Sprintf("invite v%d user %s device %s addrs %v expires %s",
		i.Version, shortHex(i.User[:]), shortHex(i.Device[:]), i.Addrs, i.Expires.UTC().Format(time.RFC3339))
}

// LogValue describes the invite in structured logs, without its secret.
func (i Invite) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("user", shortHex(i.User[:])),
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

// Verify checks that the invite is well formed, signed by its device and not
// expired at now. Its errors wrap ErrMalformed, ErrTampered or ErrExpired.
func (i Invite) Verify(now time.Time) error {
	if err := i.check(); err != nil {
		return err
	}
	if !ed25519.Verify(i.Device[:], signedMessage(i.appendUnsigned(nil)), i.Sig[:]) {
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
	if i.Version != InviteVersion {
		return refuse(ErrMalformed, "not a kith invite: version %d is not supported (this kith reads version %d): update kith on one of the devices", i.Version, InviteVersion)
	}
	if n := len(i.Addrs); n == 0 || n > MaxAddrs {
		return refuse(ErrMalformed, "not a kith invite: it has %d addresses, want 1 to %d", n, MaxAddrs)
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

// ParseInvite reads an invite code as printed by Encode and verifies it at
// now. It forgives what copying and typing do to a code: surrounding and
// embedded white space (line breaks included), lower case, and trailing "="
// padding. Its errors wrap ErrMalformed, ErrTampered or ErrExpired; none of
// them quotes the code, which holds the secret.
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

// decodeInvite turns a code into an Invite, checking its form but neither its
// signature nor its expiry.
func decodeInvite(code string) (Invite, error) {
	if len(code) > maxPastedLen {
		return Invite{}, refuse(ErrMalformed, "not a kith invite: the text is %d bytes, far longer than any invite", len(code))
	}
	code = normalize(code)
	if !strings.HasPrefix(code, CodePrefix) {
		if strings.HasPrefix(code, "KITH") {
			return Invite{}, refuse(ErrMalformed, "not a kith invite: it does not start with %q; it may come from another kith version: update kith on both devices", CodePrefix)
		}
		return Invite{}, refuse(ErrMalformed, "not a kith invite: it does not start with %q: copy the whole code, or scan the QR code", CodePrefix)
	}
	payload := code[len(CodePrefix):]
	if len(payload) > b32.EncodedLen(maxInviteLen) {
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
	return unmarshalInvite(b)
}

// unmarshalInvite reads the binary form. It accepts exactly the bytes that
// Bytes produces, so that the signature covers every bit of the input.
func unmarshalInvite(b []byte) (Invite, error) {
	if len(b) < minInviteLen || len(b) > maxInviteLen {
		return Invite{}, refuse(ErrMalformed, "not a kith invite: %d bytes, want %d to %d: copy the whole code", len(b), minInviteLen, maxInviteLen)
	}
	var i Invite
	i.Version = b[0]
	if i.Version != InviteVersion {
		return Invite{}, refuse(ErrMalformed, "not a kith invite: version %d is not supported (this kith reads version %d): update kith on one of the devices", i.Version, InviteVersion)
	}
	r := b[1:]
	r = r[copy(i.User[:], r):]
	r = r[copy(i.Device[:], r):]
	r = r[copy(i.Secret[:], r):]
	i.Expires = time.Unix(int64(binary.BigEndian.Uint32(r)), 0).UTC()
	r = r[4:]
	n := int(r[0])
	r = r[1:]
	if n == 0 || n > MaxAddrs {
		return Invite{}, refuse(ErrMalformed, "not a kith invite: it has %d addresses, want 1 to %d", n, MaxAddrs)
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
