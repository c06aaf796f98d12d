package seed

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"filippo.io/age"
)

const (
	// MaxDeviceIndex is the highest device index. The next one,
	// 2147483647, is the recovery archive key's.
	MaxDeviceIndex = 2147483646
	// recoveryIndex is the archive index of the user's recovery key.
	recoveryIndex = MaxDeviceIndex + 1
	// windowInfo is the HKDF info of the presence window secret.
	windowInfo = "kith/v1/window"
	// ageIdentityHRP and ageRecipientHRP are age's Bech32 prefixes.
	ageIdentityHRP  = "age-secret-key-"
	ageRecipientHRP = "age"
)

// The second index of each kith path, the key's role.
const (
	branchUser    uint32 = 0
	branchDevice  uint32 = 1
	branchArchive uint32 = 2
	branchWindow  uint32 = 3
)

// ErrDeviceIndex means a device index above MaxDeviceIndex.
var ErrDeviceIndex = errors.New("seed: device index out of range")

// kithPath returns m/P'/branch'/rest'…
func kithPath(branch uint32, rest ...uint32) []uint32 {
	p := []uint32{Purpose + Hardened, branch + Hardened}
	for _, r := range rest {
		p = append(p, r+Hardened)
	}
	return p
}

// checkSeed checks that seed is a 64-byte BIP39 seed.
func checkSeed(seed []byte) error {
	if len(seed) != SeedSize {
		return fmt.Errorf("seed: deriving keys: the seed is %d bytes, want the %d bytes of a BIP39 seed", len(seed), SeedSize)
	}
	return nil
}

// checkDeviceIndex checks that index can name a device.
func checkDeviceIndex(index uint32) error {
	if index > MaxDeviceIndex {
		return fmt.Errorf("%w: %d is above %d (index %d is the recovery key's)", ErrDeviceIndex, index, MaxDeviceIndex, uint32(recoveryIndex))
	}
	return nil
}

// ---- user key

// UserKey is the user's ed25519 signing key, at m/P'/0'. Its public half is
// the user ID. It has no byte form: it exists only while the user's phrase
// is in memory and is never written to disk. The zero UserKey signs nothing.
type UserKey struct {
	key ed25519.PrivateKey // 64 bytes, or nil for the zero key
}

// DeriveUser derives the user key from a 64-byte BIP39 seed.
func DeriveUser(seed []byte) (UserKey, error) {
	if err := checkSeed(seed); err != nil {
		return UserKey{}, err
	}
	priv, _, err := DeriveEd25519(seed, kithPath(branchUser)...)
	defer clear(priv[:])
	if err != nil {
		return UserKey{}, err
	}
	return UserKey{key: ed25519.NewKeyFromSeed(priv[:])}, nil
}

// Public returns the user's public key, the user ID.
func (k UserKey) Public() UserPublic { return UserPublic(publicOf(k.key)) }

// Sign signs msg with the user key. It returns nil for the zero UserKey.
func (k UserKey) Sign(msg []byte) []byte { return sign(k.key, msg) }

// String returns a redacted form naming the public key.
func (k UserKey) String() string { return "seed.UserKey(" + k.Public().String() + ")" }

// GoString returns the same redacted form as String.
func (k UserKey) GoString() string { return k.String() }

// Format implements fmt.Formatter: every verb prints the redacted form.
func (k UserKey) Format(f fmt.State, verb rune) { io.WriteString(f, k.String()) }

// LogValue implements slog.LogValuer: only the public key is logged.
func (k UserKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// ---- device key

// DeviceKey is device i's ed25519 signing key, at m/P'/1'/i'. Its public half
// is the device ID, and the device's TLS certificate is made for it. The zero
// DeviceKey signs nothing.
type DeviceKey struct {
	key ed25519.PrivateKey // 64 bytes, or nil for the zero key
}

// DeviceKeyFromBytes returns the device key whose 32-byte private key (the
// RFC 8032 seed, as Bytes returns it) is b.
func DeviceKeyFromBytes(b []byte) (DeviceKey, error) {
	if len(b) != ed25519.SeedSize {
		return DeviceKey{}, fmt.Errorf("seed: a device key is %d bytes, not %d: the key file is damaged", ed25519.SeedSize, len(b))
	}
	return DeviceKey{key: ed25519.NewKeyFromSeed(b)}, nil
}

// Public returns the device's public key, the device ID.
func (k DeviceKey) Public() DevicePublic { return DevicePublic(publicOf(k.key)) }

// Sign signs msg with the device key. It returns nil for the zero DeviceKey.
func (k DeviceKey) Sign(msg []byte) []byte { return sign(k.key, msg) }

// Ed25519 returns a copy of the key in the standard library's form, for TLS.
// It returns nil for the zero DeviceKey.
func (k DeviceKey) Ed25519() ed25519.PrivateKey {
	if k.key == nil {
		return nil
	}
	return append(ed25519.PrivateKey(nil), k.key...)
}

// Bytes returns a copy of the 32-byte private key, for the keystore to seal.
// It returns nil for the zero DeviceKey.
func (k DeviceKey) Bytes() []byte {
	if k.key == nil {
		return nil
	}
	return k.key.Seed()
}

// String returns a redacted form naming the public key.
func (k DeviceKey) String() string { return "seed.DeviceKey(" + k.Public().String() + ")" }

// GoString returns the same redacted form as String.
func (k DeviceKey) GoString() string { return k.String() }

// Format implements fmt.Formatter: every verb prints the redacted form.
func (k DeviceKey) Format(f fmt.State, verb rune) { io.WriteString(f, k.String()) }

// LogValue implements slog.LogValuer: only the public key is logged.
func (k DeviceKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

func publicOf(key ed25519.PrivateKey) (pub [32]byte) {
	if len(key) == ed25519.PrivateKeySize {
		copy(pub[:], key[32:])
	}
	return pub
}

func sign(key ed25519.PrivateKey, msg []byte) []byte {
	if len(key) != ed25519.PrivateKeySize {
		return nil
	}
	return ed25519.Sign(key, msg)
}

// ---- archive key

// ArchiveKey is an X25519 private key that opens archives: device i's at
// m/P'/2'/i', or the user's recovery key at m/P'/2'/2147483647'. It is an
// age X25519 identity, so stock age can use it. The zero ArchiveKey opens
// nothing.
type ArchiveKey struct {
	priv [32]byte
	pub  ArchiveRecipient // X25519(priv, 9); zero only for the zero key
}

// ArchiveKeyFromBytes returns the archive key whose 32-byte private key (as
// Bytes returns it) is b.
func ArchiveKeyFromBytes(b []byte) (ArchiveKey, error) {
	if len(b) != 32 {
		return ArchiveKey{}, fmt.Errorf("seed: an archive key is 32 bytes, not %d: the key file is damaged", len(b))
	}
	priv, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		return ArchiveKey{}, fmt.Errorf("seed: making an X25519 key: %w", err)
	}
	var k ArchiveKey
	copy(k.priv[:], b)
	copy(k.pub[:], priv.PublicKey().Bytes())
	return k, nil
}

// Recipient returns the public key that archives for this key are sealed
// to.
func (k ArchiveKey) Recipient() ArchiveRecipient { return k.pub }

// Bytes returns a copy of the 32-byte private key, for the keystore to seal.
// It returns nil for the zero ArchiveKey.
func (k ArchiveKey) Bytes() []byte {
	if k.pub.isZero() {
		return nil
	}
	return append([]byte(nil), k.priv[:]...)
}

// AgeIdentityString returns the key as an age identity,
// "AGE-SECRET-KEY-1…", which `age -d -i` reads. It is a secret: print it
// only when the user asked for it. It returns "" for the zero ArchiveKey.
func (k ArchiveKey) AgeIdentityString() string {
	if k.pub.isZero() {
		return ""
	}
	s := bech32Encode(ageIdentityHRP, k.priv[:])
	return toUpperASCII(s)
}

// AgeIdentity returns the key as an age identity, to decrypt with age's Go
// API.
func (k ArchiveKey) AgeIdentity() (*age.X25519Identity, error) {
	if k.pub.isZero() {
		return nil, errors.New("seed: the zero ArchiveKey is not an age identity")
	}
	id, err := age.ParseX25519Identity(k.AgeIdentityString())
	if err != nil {
		return nil, fmt.Errorf("seed: making an age identity: %w", err)
	}
	return id, nil
}

// String returns a redacted form naming the recipient.
func (k ArchiveKey) String() string { return "seed.ArchiveKey(" + k.pub.String() + ")" }

// GoString returns the same redacted form as String.
func (k ArchiveKey) GoString() string { return k.String() }

// Format implements fmt.Formatter: every verb prints the redacted form.
func (k ArchiveKey) Format(f fmt.State, verb rune) { io.WriteString(f, k.String()) }

// LogValue implements slog.LogValuer: only the recipient is logged.
func (k ArchiveKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

func toUpperASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// deriveArchive derives the archive key at m/P'/2'/index'.
func deriveArchive(seed []byte, index uint32) (ArchiveKey, error) {
	priv, _, err := DeriveCurve25519(seed, kithPath(branchArchive, index)...)
	defer clear(priv[:])
	if err != nil {
		return ArchiveKey{}, err
	}
	return ArchiveKeyFromBytes(priv[:])
}

// ---- derivation of a device's keys

// DeriveDevice derives device index's signing key and archive key from a
// 64-byte BIP39 seed. The index runs from 0 to MaxDeviceIndex.
func DeriveDevice(seed []byte, index uint32) (DeviceKey, ArchiveKey, error) {
	if err := checkSeed(seed); err != nil {
		return DeviceKey{}, ArchiveKey{}, err
	}
	if err := checkDeviceIndex(index); err != nil {
		return DeviceKey{}, ArchiveKey{}, err
	}
	priv, _, err := DeriveEd25519(seed, kithPath(branchDevice, index)...)
	defer clear(priv[:])
	if err != nil {
		return DeviceKey{}, ArchiveKey{}, err
	}
	dev, err := DeviceKeyFromBytes(priv[:])
	if err != nil {
		return DeviceKey{}, ArchiveKey{}, err
	}
	arch, err := deriveArchive(seed, index)
	if err != nil {
		return DeviceKey{}, ArchiveKey{}, err
	}
	return dev, arch, nil
}

// DeriveRecoveryArchive derives the user's recovery archive key, at
// m/P'/2'/2147483647', from a 64-byte BIP39 seed. It is never stored: the
// phrase opens what is sealed to it.
func DeriveRecoveryArchive(seed []byte) (ArchiveKey, error) {
	if err := checkSeed(seed); err != nil {
		return ArchiveKey{}, err
	}
	return deriveArchive(seed, recoveryIndex)
}

// DeriveWindowSecret derives the presence window secret from a 64-byte BIP39
// seed: HKDF-SHA256 of the ed25519 private key at m/P'/3'/0', with no salt
// and the info "kith/v1/window".
func DeriveWindowSecret(seed []byte) (WindowSecret, error) {
	if err := checkSeed(seed); err != nil {
		return WindowSecret{}, err
	}
	priv, _, err := DeriveEd25519(seed, kithPath(branchWindow, 0)...)
	defer clear(priv[:])
	if err != nil {
		return WindowSecret{}, err
	}
	out, err := hkdf.Key(sha256.New, priv[:], nil, windowInfo, 32)
	if err != nil {
		return WindowSecret{}, fmt.Errorf("seed: deriving the window secret: %w", err)
	}
	var w WindowSecret
	copy(w[:], out)
	clear(out)
	return w, nil
}

// ---- public keys

// UserPublic is a user's ed25519 public key; its hex form is the user ID.
type UserPublic [32]byte

// DevicePublic is a device's ed25519 public key; its hex form is the device
// ID.
type DevicePublic [32]byte

// ArchiveRecipient is the X25519 public key of an ArchiveKey. Its text form
// is the age recipient "age1…".
type ArchiveRecipient [32]byte

// ParseUserPublic parses a user ID: 64 hexadecimal digits.
func ParseUserPublic(s string) (UserPublic, error) {
	var p UserPublic
	return p, p.UnmarshalText([]byte(s))
}

// ParseDevicePublic parses a device ID: 64 hexadecimal digits.
func ParseDevicePublic(s string) (DevicePublic, error) {
	var p DevicePublic
	return p, p.UnmarshalText([]byte(s))
}

// ID returns the user ID, the key in lowercase hex.
func (p UserPublic) ID() string { return hex.EncodeToString(p[:]) }

// String returns the user ID.
func (p UserPublic) String() string { return p.ID() }

// ShortLen is how many hex digits of an ID Short gives: what "kith status"
// and "kith friends" show, and a prefix "kith friends block" accepts.
const ShortLen = 12

// Short is the first ShortLen hex digits of the ID, for people.
func (p UserPublic) Short() string { return hex.EncodeToString(p[:ShortLen/2]) }

// Equal reports whether p and q are the same key, in constant time.
func (p UserPublic) Equal(q UserPublic) bool { return subtle.ConstantTimeCompare(p[:], q[:]) == 1 }

// Verify reports whether sig is p's valid signature of msg.
func (p UserPublic) Verify(msg, sig []byte) bool { return ed25519.Verify(p[:], msg, sig) }

// MarshalText returns the user ID.
func (p UserPublic) MarshalText() ([]byte, error) { return []byte(p.ID()), nil }

// UnmarshalText parses a user ID.
func (p *UserPublic) UnmarshalText(b []byte) error { return parseHex32("user ID", b, (*[32]byte)(p)) }

func (p UserPublic) isZero() bool { return isZero32(p) }

// ID returns the device ID, the key in lowercase hex.
func (p DevicePublic) ID() string { return hex.EncodeToString(p[:]) }

// String returns the device ID.
func (p DevicePublic) String() string { return p.ID() }

// Short is the first ShortLen hex digits of the ID, for people.
func (p DevicePublic) Short() string { return hex.EncodeToString(p[:ShortLen/2]) }

// Equal reports whether p and q are the same key, in constant time.
func (p DevicePublic) Equal(q DevicePublic) bool { return subtle.ConstantTimeCompare(p[:], q[:]) == 1 }

// Verify reports whether sig is p's valid signature of msg.
func (p DevicePublic) Verify(msg, sig []byte) bool { return ed25519.Verify(p[:], msg, sig) }

// Ed25519 returns the key in the standard library's form, to compare with a
// TLS peer's key.
func (p DevicePublic) Ed25519() ed25519.PublicKey { return append(ed25519.PublicKey(nil), p[:]...) }

// MarshalText returns the device ID.
func (p DevicePublic) MarshalText() ([]byte, error) { return []byte(p.ID()), nil }

// UnmarshalText parses a device ID.
func (p *DevicePublic) UnmarshalText(b []byte) error {
	return parseHex32("device ID", b, (*[32]byte)(p))
}

func (p DevicePublic) isZero() bool { return isZero32(p) }

// ParseArchiveRecipient parses an age X25519 recipient, "age1…".
func ParseArchiveRecipient(s string) (ArchiveRecipient, error) {
	var r ArchiveRecipient
	return r, r.UnmarshalText([]byte(s))
}

// String returns the age recipient, "age1…".
func (r ArchiveRecipient) String() string { return bech32Encode(ageRecipientHRP, r[:]) }

// Equal reports whether r and q are the same key, in constant time.
func (r ArchiveRecipient) Equal(q ArchiveRecipient) bool {
	return subtle.ConstantTimeCompare(r[:], q[:]) == 1
}

// AgeRecipient returns the recipient in age's Go form, to encrypt with.
func (r ArchiveRecipient) AgeRecipient() (*age.X25519Recipient, error) {
	ar, err := age.ParseX25519Recipient(r.String())
	if err != nil {
		return nil, fmt.Errorf("seed: making an age recipient: %w", err)
	}
	return ar, nil
}

// MarshalText returns the age recipient, "age1…".
func (r ArchiveRecipient) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses an age recipient, "age1…".
func (r *ArchiveRecipient) UnmarshalText(b []byte) error {
	s := string(b)
	if len(s) > 100 {
		return fmt.Errorf("seed: an age recipient is 62 characters, not %d", len(s))
	}
	hrp, data, err := bech32Decode(s)
	if err == nil && hrp != ageRecipientHRP {
		err = fmt.Errorf("it starts with %q, not \"age1\"", hrp+"1")
	}
	if err == nil && len(data) != 32 {
		err = fmt.Errorf("it holds %d bytes, not 32", len(data))
	}
	if err == nil && s != strings.ToLower(s) {
		err = errors.New("age recipients are lower case")
	}
	if err != nil {
		return fmt.Errorf("seed: %q is not an age X25519 recipient: %w", s, err)
	}
	copy(r[:], data)
	return nil
}

func (r ArchiveRecipient) isZero() bool { return isZero32(r) }

// ---- window secret

// WindowSecret is the user's secret for presence windows. It is shared with
// the user's own devices and friends, and reveals only the window schedule;
// still, it never prints (String is redacted) and cannot be marshalled as
// text or JSON by accident: persist w[:] explicitly.
type WindowSecret [32]byte

// Equal reports whether w and v are the same secret, in constant time.
func (w WindowSecret) Equal(v WindowSecret) bool { return subtle.ConstantTimeCompare(w[:], v[:]) == 1 }

// String returns a redacted form.
func (w WindowSecret) String() string { return "seed.WindowSecret(redacted)" }

// GoString returns a redacted form.
func (w WindowSecret) GoString() string { return w.String() }

// Format implements fmt.Formatter: every verb prints the redacted form.
func (w WindowSecret) Format(f fmt.State, verb rune) { io.WriteString(f, w.String()) }

// LogValue implements slog.LogValuer: the secret is never logged.
func (w WindowSecret) LogValue() slog.Value { return slog.StringValue(w.String()) }

// MarshalText always fails, so that the secret does not end up in JSON or
// other text by accident.
func (w WindowSecret) MarshalText() ([]byte, error) {
	return nil, errors.New("seed: a window secret is not marshalled as text; store its bytes explicitly")
}

// ---- helpers

func isZero32(b [32]byte) bool {
	var zero [32]byte
	return subtle.ConstantTimeCompare(b[:], zero[:]) == 1
}

// parseHex32 parses 64 hexadecimal digits into dst.
func parseHex32(what string, b []byte, dst *[32]byte) error {
	if len(b) != 64 {
		return fmt.Errorf("seed: %s is %d characters long; a %s is 64 hexadecimal digits", shortQuote(b), len(b), what)
	}
	var v [32]byte
	if _, err := hex.Decode(v[:], b); err != nil {
		return fmt.Errorf("seed: %s is not a %s: a %s is 64 hexadecimal digits", shortQuote(b), what, what)
	}
	*dst = v
	return nil
}

// shortQuote quotes b for an error message, cut short if it is long.
func shortQuote(b []byte) string {
	const maxLen = 70
	if len(b) > maxLen {
		return fmt.Sprintf("%q…", b[:maxLen])
	}
	return fmt.Sprintf("%q", b)
}
