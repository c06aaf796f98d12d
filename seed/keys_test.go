package seed

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/hkdf"
)

// testSeed is the BIP39 seed of vector24 with no passphrase.
func testSeed(t testing.TB) []byte {
	t.Helper()
	return mustParse(t, vector24).Seed("")
}

func mustPath(t testing.TB, s string) []uint32 {
	t.Helper()
	p, err := ParsePath(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPaths checks each role against the generic SLIP-0010 functions at the
// paths DESIGN §2 gives, written out as text.
func TestPaths(t *testing.T) {
	seed := testSeed(t)
	user, err := DeriveUser(seed)
	if err != nil {
		t.Fatal(err)
	}
	priv, _, _ := DeriveEd25519(seed, mustPath(t, "m/1802073192'/0'")...)
	if want, got := ed25519.NewKeyFromSeed(priv[:]).Public().(ed25519.PublicKey), user.Public(); !bytes.Equal(got[:], want) {
		t.Error("the user key is not the ed25519 key at m/P'/0'")
	}

	dev, arch, err := DeriveDevice(seed, 5)
	if err != nil {
		t.Fatal(err)
	}
	priv, _, _ = DeriveEd25519(seed, mustPath(t, "m/1802073192'/1'/5'")...)
	if !bytes.Equal(dev.Bytes(), priv[:]) {
		t.Error("device 5's key is not the ed25519 key at m/P'/1'/5'")
	}
	priv, _, _ = DeriveCurve25519(seed, mustPath(t, "m/1802073192'/2'/5'")...)
	if !bytes.Equal(arch.Bytes(), priv[:]) {
		t.Error("device 5's archive key is not the curve25519 key at m/P'/2'/5'")
	}

	rec, err := DeriveRecoveryArchive(seed)
	if err != nil {
		t.Fatal(err)
	}
	priv, _, _ = DeriveCurve25519(seed, mustPath(t, "m/1802073192'/2'/2147483647'")...)
	if !bytes.Equal(rec.Bytes(), priv[:]) {
		t.Error("the recovery key is not the curve25519 key at m/P'/2'/2147483647'")
	}

	// The window secret, with x/crypto's HKDF as an independent
	// implementation.
	win, err := DeriveWindowSecret(seed)
	if err != nil {
		t.Fatal(err)
	}
	priv, _, _ = DeriveEd25519(seed, mustPath(t, "m/1802073192'/3'/0'")...)
	want := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, priv[:], nil, []byte("kith/v1/window")), want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(win[:], want) {
		t.Error("the window secret is not HKDF-SHA256 of the key at m/P'/3'/0' with info kith/v1/window")
	}
}

func TestDeterministicAndDistinct(t *testing.T) {
	seed := testSeed(t)
	u1, _ := DeriveUser(seed)
	u2, _ := DeriveUser(bytes.Clone(seed))
	if !u1.Public().Equal(u2.Public()) {
		t.Error("the user key differs between two derivations")
	}
	d0, a0, err := DeriveDevice(seed, 0)
	if err != nil {
		t.Fatal(err)
	}
	d0b, a0b, _ := DeriveDevice(seed, 0)
	d1, a1, _ := DeriveDevice(seed, 1)
	if !d0.Public().Equal(d0b.Public()) || !a0.Recipient().Equal(a0b.Recipient()) {
		t.Error("device 0's keys differ between two derivations")
	}
	if d0.Public().Equal(d1.Public()) || a0.Recipient().Equal(a1.Recipient()) {
		t.Error("devices 0 and 1 have the same keys")
	}
	rec, _ := DeriveRecoveryArchive(seed)
	w1, _ := DeriveWindowSecret(seed)
	w2, _ := DeriveWindowSecret(seed)
	if !w1.Equal(w2) {
		t.Error("the window secret differs between two derivations")
	}
	// No two roles share key material.
	all := map[string]string{
		"user":         u1.Public().ID(),
		"device 0":     hex.EncodeToString(d0.Bytes()),
		"device 1":     hex.EncodeToString(d1.Bytes()),
		"archive 0":    hex.EncodeToString(a0.Bytes()),
		"archive 1":    hex.EncodeToString(a1.Bytes()),
		"recovery":     hex.EncodeToString(rec.Bytes()),
		"window":       hex.EncodeToString(w1[:]),
		"device 0 pub": d0.Public().ID(),
	}
	seen := map[string]string{}
	for name, v := range all {
		if other, ok := seen[v]; ok {
			t.Errorf("%s and %s are the same bytes", name, other)
		}
		seen[v] = name
	}
}

func TestDeviceIndexLimits(t *testing.T) {
	seed := testSeed(t)
	if _, _, err := DeriveDevice(seed, MaxDeviceIndex); err != nil {
		t.Errorf("device %d: %v", MaxDeviceIndex, err)
	}
	for _, i := range []uint32{MaxDeviceIndex + 1, ^uint32(0)} {
		if _, _, err := DeriveDevice(seed, i); !errors.Is(err, ErrDeviceIndex) {
			t.Errorf("device %d: error %v, want ErrDeviceIndex", i, err)
		}
	}
}

func TestDeriveRefusesWrongSeedLength(t *testing.T) {
	for _, n := range []int{0, 16, 32, 63, 65} {
		s := make([]byte, n)
		if _, err := DeriveUser(s); err == nil {
			t.Errorf("DeriveUser accepted a %d-byte seed", n)
		}
		if _, _, err := DeriveDevice(s, 0); err == nil {
			t.Errorf("DeriveDevice accepted a %d-byte seed", n)
		}
		if _, err := DeriveRecoveryArchive(s); err == nil {
			t.Errorf("DeriveRecoveryArchive accepted a %d-byte seed", n)
		}
		if _, err := DeriveWindowSecret(s); err == nil {
			t.Errorf("DeriveWindowSecret accepted a %d-byte seed", n)
		}
	}
}

func TestKeyBytesRoundTrip(t *testing.T) {
	dev, arch, err := DeriveDevice(testSeed(t), 3)
	if err != nil {
		t.Fatal(err)
	}
	dev2, err := DeviceKeyFromBytes(dev.Bytes())
	if err != nil || !dev2.Public().Equal(dev.Public()) {
		t.Errorf("device key from its bytes: %v", err)
	}
	arch2, err := ArchiveKeyFromBytes(arch.Bytes())
	if err != nil || !arch2.Recipient().Equal(arch.Recipient()) {
		t.Errorf("archive key from its bytes: %v", err)
	}
	for _, n := range []int{0, 31, 33, 64} {
		if _, err := DeviceKeyFromBytes(make([]byte, n)); err == nil {
			t.Errorf("DeviceKeyFromBytes accepted %d bytes", n)
		}
		if _, err := ArchiveKeyFromBytes(make([]byte, n)); err == nil {
			t.Errorf("ArchiveKeyFromBytes accepted %d bytes", n)
		}
	}
	// Bytes returns copies.
	b := dev.Bytes()
	b[0] ^= 1
	if bytes.Equal(b, dev.Bytes()) {
		t.Error("DeviceKey.Bytes shares its memory with the key")
	}
	e := dev.Ed25519()
	e[0] ^= 1
	if bytes.Equal(e, dev.Ed25519()) {
		t.Error("DeviceKey.Ed25519 shares its memory with the key")
	}
}

func TestSignatures(t *testing.T) {
	seed := testSeed(t)
	user, _ := DeriveUser(seed)
	dev, _, _ := DeriveDevice(seed, 0)
	msg := []byte("hello")
	if !user.Public().Verify(msg, user.Sign(msg)) {
		t.Error("the user's signature does not verify")
	}
	if !dev.Public().Verify(msg, dev.Sign(msg)) || !ed25519.Verify(dev.Public().Ed25519(), msg, dev.Sign(msg)) {
		t.Error("the device's signature does not verify")
	}
	if devPub := dev.Public(); !bytes.Equal(dev.Ed25519().Public().(ed25519.PublicKey), devPub[:]) {
		t.Error("DeviceKey.Ed25519 is not the device key")
	}
	if user.Public().Verify(msg, dev.Sign(msg)) {
		t.Error("a device signature verified as the user's")
	}
	var zero UserKey
	if zero.Sign(msg) != nil {
		t.Error("the zero UserKey signed something")
	}
}

// TestAgeInterop encrypts with age to ArchiveRecipient.String() and decrypts
// with AgeIdentity, all through age's own parsers.
func TestAgeInterop(t *testing.T) {
	seed := testSeed(t)
	_, arch, err := DeriveDevice(seed, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, other, _ := DeriveDevice(seed, 1)

	recipient, err := age.ParseX25519Recipient(arch.Recipient().String())
	if err != nil {
		t.Fatalf("age cannot parse %q: %v", arch.Recipient(), err)
	}
	identity, err := arch.AgeIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if identity.Recipient().String() != arch.Recipient().String() {
		t.Errorf("age derives recipient %s from the identity, want %s", identity.Recipient(), arch.Recipient())
	}
	parsed, err := age.ParseX25519Identity(arch.AgeIdentityString())
	if err != nil {
		t.Fatalf("age cannot parse the identity string: %v", err)
	}
	if parsed.Recipient().String() != arch.Recipient().String() || parsed.String() != arch.AgeIdentityString() {
		t.Error("the identity string does not round-trip through age")
	}
	if !strings.HasPrefix(arch.AgeIdentityString(), "AGE-SECRET-KEY-1") {
		t.Errorf("identity string %q lacks the AGE-SECRET-KEY-1 prefix", arch.AgeIdentityString()[:16])
	}

	plain := []byte("the archive of a decided conversation")
	var sealed bytes.Buffer
	w, err := age.Encrypt(&sealed, recipient)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := age.Decrypt(bytes.NewReader(sealed.Bytes()), identity)
	if err != nil {
		t.Fatalf("decrypting with the derived identity: %v", err)
	}
	got, _ := io.ReadAll(r)
	if !bytes.Equal(got, plain) {
		t.Errorf("decrypted %q, want %q", got, plain)
	}
	otherID, _ := other.AgeIdentity()
	if _, err := age.Decrypt(bytes.NewReader(sealed.Bytes()), otherID); err == nil {
		t.Error("device 1's archive key opened a file sealed to device 0")
	}
	// And AgeRecipient gives the same recipient.
	ar, err := arch.Recipient().AgeRecipient()
	if err != nil || ar.String() != recipient.String() {
		t.Errorf("AgeRecipient: %v", err)
	}
}

// TestBech32AgainstAge checks the Bech32 encoder against age's own on keys
// age generates.
func TestBech32AgainstAge(t *testing.T) {
	for i := 0; i < 20; i++ {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		hrp, priv, err := bech32Decode(id.String())
		if err != nil || hrp != ageIdentityHRP {
			t.Fatalf("decoding age's %q…: %q, %v", id.String()[:20], hrp, err)
		}
		k, err := ArchiveKeyFromBytes(priv)
		if err != nil {
			t.Fatal(err)
		}
		if k.AgeIdentityString() != id.String() {
			t.Error("the identity string differs from age's")
		}
		if k.Recipient().String() != id.Recipient().String() {
			t.Errorf("recipient %s, age says %s", k.Recipient(), id.Recipient())
		}
		r, err := ParseArchiveRecipient(id.Recipient().String())
		if err != nil || !r.Equal(k.Recipient()) {
			t.Errorf("ParseArchiveRecipient(%s): %v", id.Recipient(), err)
		}
	}
}

func TestParseArchiveRecipientErrors(t *testing.T) {
	_, arch, _ := DeriveDevice(testSeed(t), 0)
	rcpt := arch.Recipient()
	good := rcpt.String()
	flipped := []byte(good)
	flipped[10] = map[bool]byte{true: 'q', false: 'p'}[flipped[10] != 'q']
	bad := map[string]string{
		"empty":           "",
		"upper case":      strings.ToUpper(good),
		"mixed case":      "Age" + good[3:],
		"a typo":          string(flipped),
		"identity":        arch.AgeIdentityString(),
		"another prefix":  bech32Encode("agf", rcpt[:]),
		"short":           bech32Encode("age", rcpt[:31]),
		"not bech32":      "age1 hello",
		"very long":       strings.Repeat("q", 1000),
		"no data part":    "age1",
		"bad hrp":         "\x01\x02" + good[3:],
		"in hex":          hex.EncodeToString(rcpt[:]),
		"trailing space ": good + " ",
	}
	for name, s := range bad {
		if _, err := ParseArchiveRecipient(s); err == nil {
			t.Errorf("%s: %q was accepted", name, s)
		}
	}
	r, err := ParseArchiveRecipient(good)
	if err != nil || !r.Equal(arch.Recipient()) {
		t.Errorf("%s: %v", good, err)
	}
}

func TestPublicKeyText(t *testing.T) {
	seed := testSeed(t)
	user, _ := DeriveUser(seed)
	dev, arch, _ := DeriveDevice(seed, 0)
	doc := struct {
		User    UserPublic       `json:"user_id"`
		Device  DevicePublic     `json:"device_id"`
		Archive ArchiveRecipient `json:"archive_recipient"`
	}{user.Public(), dev.Public(), arch.Recipient()}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"user_id":"%s","device_id":"%s","archive_recipient":"%s"}`, user.Public().ID(), dev.Public().ID(), arch.Recipient())
	if string(out) != want {
		t.Errorf("JSON %s, want %s", out, want)
	}
	back := doc
	back.User, back.Device, back.Archive = UserPublic{}, DevicePublic{}, ArchiveRecipient{}
	if err := json.Unmarshal(out, &back); err != nil || back != doc {
		t.Errorf("JSON round trip: %v", err)
	}
	if id := user.Public().ID(); len(id) != 64 || id != strings.ToLower(id) || user.Public().String() != id {
		t.Errorf("user ID %q is not 64 lowercase hex digits", id)
	}
	if p, err := ParseUserPublic(strings.ToUpper(user.Public().ID())); err != nil || !p.Equal(user.Public()) {
		t.Errorf("upper-case user ID: %v", err)
	}
	if p, err := ParseDevicePublic(dev.Public().ID()); err != nil || !p.Equal(dev.Public()) {
		t.Errorf("device ID: %v", err)
	}
	for _, s := range []string{"", "00", strings.Repeat("g", 64), strings.Repeat("0", 63), strings.Repeat("0", 65), dev.Public().ID() + " "} {
		if _, err := ParseUserPublic(s); err == nil {
			t.Errorf("ParseUserPublic(%q) succeeded", s)
		}
		if _, err := ParseDevicePublic(s); err == nil {
			t.Errorf("ParseDevicePublic(%q) succeeded", s)
		}
	}
}

// TestSecretsDoNotPrint checks that no private key reaches fmt, JSON or slog.
func TestSecretsDoNotPrint(t *testing.T) {
	seed := testSeed(t)
	user, _ := DeriveUser(seed)
	dev, arch, _ := DeriveDevice(seed, 0)
	win, _ := DeriveWindowSecret(seed)
	secrets := [][]byte{dev.Bytes(), arch.Bytes(), win[:], user.key.Seed()}

	var out bytes.Buffer
	for _, v := range []any{user, dev, arch, win, &user, &dev, &arch, &win} {
		fmt.Fprintf(&out, "%v %+v %#v %s %x %X %q %d %c %b\n", v, v, v, v, v, v, v, v, v, v)
	}
	for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
		slog.New(h).Info("keys", "user", user, "device", dev, "archive", arch, "window", win)
	}
	j, _ := json.Marshal(struct {
		U UserKey
		D DeviceKey
		A ArchiveKey
	}{user, dev, arch})
	out.Write(j)
	if _, err := json.Marshal(win); err == nil {
		t.Error("a WindowSecret marshalled to JSON")
	}
	text := out.String()
	for _, s := range secrets {
		for _, form := range []string{hex.EncodeToString(s), fmt.Sprint(s), fmt.Sprintf("%q", s)} {
			if strings.Contains(text, form) {
				t.Fatalf("a secret leaked in the form %q", form)
			}
		}
		if bytes.Contains(out.Bytes(), s) {
			t.Fatal("a secret leaked as raw bytes")
		}
	}
	if !strings.Contains(text, dev.Public().ID()) {
		t.Error("the device key's printed form should name its public key")
	}
}

func TestZeroKeys(t *testing.T) {
	var d DeviceKey
	var a ArchiveKey
	if d.Bytes() != nil || d.Ed25519() != nil || d.Sign([]byte("x")) != nil {
		t.Error("the zero DeviceKey has bytes or signs")
	}
	if a.Bytes() != nil || a.AgeIdentityString() != "" {
		t.Error("the zero ArchiveKey has bytes or an identity")
	}
	if _, err := a.AgeIdentity(); err == nil {
		t.Error("the zero ArchiveKey made an age identity")
	}
}

func TestShortIDs(t *testing.T) {
	var d DevicePublic
	for i := range d {
		d[i] = byte(i)
	}
	if got := d.Short(); got != "000102030405" || len(got) != ShortLen || d.ID()[:ShortLen] != got {
		t.Fatalf("DevicePublic.Short() = %q", got)
	}
	if got := UserPublic(d).Short(); got != "000102030405" {
		t.Fatalf("UserPublic.Short() = %q", got)
	}
}
