package seed

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// certFixture is a certificate and a revocation from fixed inputs: the
// vector24 phrase with no passphrase, device 1, fixed times.
type certFixture struct {
	user    UserKey
	device  DeviceKey
	archive ArchiveKey
	cert    DeviceCert
	revoke  Revocation
}

var (
	fixtureIssued  = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	fixtureRevoked = time.Date(2026, 11, 23, 8, 30, 0, 0, time.UTC)
)

func newCertFixture(t testing.TB) certFixture {
	t.Helper()
	seed := testSeed(t)
	user, err := DeriveUser(seed)
	if err != nil {
		t.Fatal(err)
	}
	dev, arch, err := DeriveDevice(seed, 1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := user.IssueDeviceCert(DeviceCert{
		Device:  dev.Public(),
		Index:   1,
		Archive: arch.Recipient(),
		Name:    "laptop",
		Roles:   []string{"access", "relay"},
		Issued:  fixtureIssued,
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := user.Revoke(Revocation{Device: dev.Public(), Index: 1, Revoked: fixtureRevoked})
	if err != nil {
		t.Fatal(err)
	}
	return certFixture{user, dev, arch, c, r}
}

// Golden encodings of the fixture. ed25519 signatures are deterministic, so
// these are stable; a change to them is a change of the wire format.
const (
	goldenCert   = "6b6974682d63657274016123d662699081242c842827165153676a52301adac1ec17c18557ca96e5f2c56946d995ec557e295c5d3c58def3bbcdd2dda71ed0257c56c2d51cd267f10620000000017801bd1b4bf954c656bf19bd7d17bda3da6593d6d9c942a539a809beee719747066c6170746f7002066163636573730572656c6179000000006b02bd208d81393f0fcdc63a85d963f2b71020e404756d930756a10438cb42234e45f4c631a429ca0ba453e2ebb41212a5343ef1649a62add99d6db96acd5b48ad42f701"
	goldenRevoke = "6b6974682d7265766f6b65016123d662699081242c842827165153676a52301adac1ec17c18557ca96e5f2c56946d995ec557e295c5d3c58def3bbcdd2dda71ed0257c56c2d51cd267f1062000000001000000006b03f9881c52b4df92f46a2259822662b608b030e0dd427663a17606831b0eaf74924226a22204b3e8cd441c32d81ded5a562af08b87c65008299928e5c0df7691c8010f"
)

func TestDeviceCertGolden(t *testing.T) {
	f := newCertFixture(t)
	got := f.cert.Marshal()
	if hex.EncodeToString(got) != goldenCert {
		t.Errorf("certificate\n got %x\nwant %s", got, goldenCert)
	}

	// The layout, built field by field from the table in doc.go.
	var body []byte
	body = append(body, "kith-cert"...)
	body = append(body, 0x01)
	user, dev, arch := f.user.Public(), f.device.Public(), f.archive.Recipient()
	body = append(body, user[:]...)
	body = append(body, dev[:]...)
	body = append(body, 0, 0, 0, 1)
	body = append(body, arch[:]...)
	body = append(body, 6)
	body = append(body, "laptop"...)
	body = append(body, 2, 6)
	body = append(body, "access"...)
	body = append(body, 5)
	body = append(body, "relay"...)
	body = binary.BigEndian.AppendUint64(body, uint64(fixtureIssued.Unix()))
	if !bytes.Equal(got[:len(got)-64], body) {
		t.Errorf("body\n got %x\nwant %x", got[:len(got)-64], body)
	}
	if len(got) != len(body)+64 {
		t.Fatalf("certificate is %d bytes, want %d", len(got), len(body)+64)
	}
	if !ed25519.Verify(user[:], append([]byte("kith/v1/device-cert\x00"), body...), got[len(body):]) {
		t.Error("the signature does not cover \"kith/v1/device-cert\\x00\" || body")
	}

	parsed, err := ParseDeviceCert(mustHex(t, goldenCert))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(parsed, f.cert) {
		t.Errorf("parsed %+v\nwant %+v", parsed, f.cert)
	}
}

func TestRevocationGolden(t *testing.T) {
	f := newCertFixture(t)
	got := f.revoke.Marshal()
	if hex.EncodeToString(got) != goldenRevoke {
		t.Errorf("revocation\n got %x\nwant %s", got, goldenRevoke)
	}
	if len(got) != RevocationSize || RevocationSize != 152 {
		t.Errorf("revocation is %d bytes (RevocationSize %d), want 152", len(got), RevocationSize)
	}
	var body []byte
	body = append(body, "kith-revoke"...)
	body = append(body, 0x01)
	user, dev := f.user.Public(), f.device.Public()
	body = append(body, user[:]...)
	body = append(body, dev[:]...)
	body = append(body, 0, 0, 0, 1)
	body = binary.BigEndian.AppendUint64(body, uint64(fixtureRevoked.Unix()))
	if !bytes.Equal(got[:88], body) {
		t.Errorf("body\n got %x\nwant %x", got[:88], body)
	}
	if !ed25519.Verify(user[:], append([]byte("kith/v1/revocation\x00"), body...), got[88:]) {
		t.Error("the signature does not cover \"kith/v1/revocation\\x00\" || body")
	}
	parsed, err := ParseRevocation(mustHex(t, goldenRevoke))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(parsed, f.revoke) {
		t.Errorf("parsed %+v\nwant %+v", parsed, f.revoke)
	}
}

func TestCertRoundTrip(t *testing.T) {
	f := newCertFixture(t)
	for _, c := range []DeviceCert{
		{Device: f.device.Public(), Archive: f.archive.Recipient(), Issued: fixtureIssued},
		{Device: f.device.Public(), Archive: f.archive.Recipient(), Index: MaxDeviceIndex, Name: strings.Repeat("é", 32),
			Roles: []string{"a", "b", "c", "d", "e", "f", "g", strings.Repeat("z", 32)}, Issued: fixtureIssued},
		{Device: f.device.Public(), Archive: f.archive.Recipient(), Name: "Anna's phone 📱"},
	} {
		issued, err := f.user.IssueDeviceCert(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := issued.Verify(); err != nil {
			t.Fatal(err)
		}
		b := issued.Marshal()
		parsed, err := ParseDeviceCert(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(parsed, issued) {
			t.Errorf("parsed %+v\nwant %+v", parsed, issued)
		}
		if !bytes.Equal(parsed.Marshal(), b) {
			t.Error("marshalling a parsed certificate changed its bytes")
		}
	}
}

// TestCertSizes checks the sizes the package comment gives: 184 bytes with
// an empty name and no roles, 512 with every field at its limit.
func TestCertSizes(t *testing.T) {
	f := newCertFixture(t)
	smallest, err := f.user.IssueDeviceCert(DeviceCert{Device: f.device.Public(), Archive: f.archive.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	var roles []string
	for i := range MaxRoles {
		roles = append(roles, strings.Repeat(string(rune('a'+i)), MaxRoleBytes))
	}
	largest, err := f.user.IssueDeviceCert(DeviceCert{Device: f.device.Public(), Archive: f.archive.Recipient(),
		Name: strings.Repeat("n", MaxNameBytes), Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(smallest.Marshal()); n != 184 {
		t.Errorf("the smallest certificate is %d bytes, want 184", n)
	}
	if n := len(largest.Marshal()); n != 512 {
		t.Errorf("the largest certificate is %d bytes, want 512", n)
	}
	if _, err := ParseDeviceCert(largest.Marshal()); err != nil {
		t.Error(err)
	}
}

func TestIssueNormalizes(t *testing.T) {
	f := newCertFixture(t)
	roles := []string{"access"}
	local := time.Date(2026, 1, 2, 3, 4, 5, 999_999_999, time.FixedZone("X", 5*3600))
	c, err := f.user.IssueDeviceCert(DeviceCert{Device: f.device.Public(), Archive: f.archive.Recipient(), Roles: roles, Issued: local})
	if err != nil {
		t.Fatal(err)
	}
	if c.Issued.Location() != time.UTC || c.Issued.Nanosecond() != 0 || c.Issued.Unix() != local.Unix() {
		t.Errorf("Issued = %v, want %v in whole seconds, UTC", c.Issued, local)
	}
	if !c.User.Equal(f.user.Public()) {
		t.Error("User was not filled in")
	}
	roles[0] = "relay"
	if c.Roles[0] != "access" || c.Verify() != nil {
		t.Error("the certificate shares the caller's roles slice")
	}
	before := time.Now().Add(-time.Second)
	c, err = f.user.IssueDeviceCert(DeviceCert{Device: f.device.Public(), Archive: f.archive.Recipient()})
	if err != nil || c.Issued.Before(before) || c.Issued.After(time.Now()) {
		t.Errorf("a zero Issued should mean now, got %v (%v)", c.Issued, err)
	}
}

func TestIssueRefusesBadFields(t *testing.T) {
	f := newCertFixture(t)
	other, _, _ := DeriveDevice(testSeed(t), 2)
	otherUser, _ := DeriveUser(mustParse(t, vector12).Seed(""))
	ok := DeviceCert{Device: f.device.Public(), Archive: f.archive.Recipient(), Issued: fixtureIssued}
	bad := map[string]func(c *DeviceCert){
		"name too long":        func(c *DeviceCert) { c.Name = strings.Repeat("x", MaxNameBytes+1) },
		"name not UTF-8":       func(c *DeviceCert) { c.Name = "\xff" },
		"name with escape":     func(c *DeviceCert) { c.Name = "evil\x1b[2J" },
		"name with newline":    func(c *DeviceCert) { c.Name = "a\nb" },
		"name with bidi":       func(c *DeviceCert) { c.Name = "abc\u202edcba" },
		"too many roles":       func(c *DeviceCert) { c.Roles = strings.Fields("a b c d e f g h i") },
		"empty role":           func(c *DeviceCert) { c.Roles = []string{""} },
		"long role":            func(c *DeviceCert) { c.Roles = []string{strings.Repeat("r", MaxRoleBytes+1)} },
		"upper-case role":      func(c *DeviceCert) { c.Roles = []string{"Access"} },
		"role with space":      func(c *DeviceCert) { c.Roles = []string{"always on"} },
		"role twice":           func(c *DeviceCert) { c.Roles = []string{"relay", "relay"} },
		"recovery index":       func(c *DeviceCert) { c.Index = MaxDeviceIndex + 1 },
		"zero device":          func(c *DeviceCert) { c.Device = DevicePublic{} },
		"zero archive":         func(c *DeviceCert) { c.Archive = ArchiveRecipient{} },
		"another user":         func(c *DeviceCert) { c.User = otherUser.Public() },
		"before 1970":          func(c *DeviceCert) { c.Issued = time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC) },
		"after 9999":           func(c *DeviceCert) { c.Issued = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"another device's key": nil, // valid: the user may certify any device key
	}
	for name, mutate := range bad {
		c := ok
		if mutate == nil {
			c.Device = other.Public()
			if _, err := f.user.IssueDeviceCert(c); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		mutate(&c)
		if _, err := f.user.IssueDeviceCert(c); err == nil {
			t.Errorf("%s: the certificate was issued", name)
		}
		if name != "another user" && c.Marshal() != nil {
			t.Errorf("%s: Marshal gave bytes for an invalid certificate", name)
		}
	}
	if _, err := (UserKey{}).IssueDeviceCert(ok); err == nil {
		t.Error("the zero UserKey issued a certificate")
	}
	if _, err := (UserKey{}).Revoke(Revocation{Device: f.device.Public()}); err == nil {
		t.Error("the zero UserKey signed a revocation")
	}
	if _, err := f.user.Revoke(Revocation{Device: f.device.Public(), Index: MaxDeviceIndex + 1}); err == nil {
		t.Error("a revocation of the recovery index was signed")
	}
	if _, err := f.user.Revoke(Revocation{Device: f.device.Public(), User: otherUser.Public()}); err == nil {
		t.Error("a revocation naming another user was signed")
	}
}

// TestTamperingFails flips every bit of each record, cuts it at every length
// and extends it: each change must fail to parse.
func TestTamperingFails(t *testing.T) {
	f := newCertFixture(t)
	records := map[string]struct {
		b     []byte
		parse func([]byte) error
	}{
		"certificate": {f.cert.Marshal(), func(b []byte) error { _, err := ParseDeviceCert(b); return err }},
		"revocation":  {f.revoke.Marshal(), func(b []byte) error { _, err := ParseRevocation(b); return err }},
	}
	for name, r := range records {
		if err := r.parse(r.b); err != nil {
			t.Fatalf("%s: the untouched record fails: %v", name, err)
		}
		for i := range r.b {
			for bit := 0; bit < 8; bit++ {
				b := bytes.Clone(r.b)
				b[i] ^= 1 << bit
				if r.parse(b) == nil {
					t.Errorf("%s: flipping bit %d of byte %d went unnoticed", name, bit, i)
				}
			}
		}
		for n := 0; n < len(r.b); n++ {
			if r.parse(r.b[:n]) == nil {
				t.Errorf("%s: cut to %d bytes, it still parsed", name, n)
			}
		}
		err := r.parse(append(bytes.Clone(r.b), 0))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s with a trailing byte: error %v, want ErrMalformed", name, err)
		}
	}
}

func TestCrossRoleParseFails(t *testing.T) {
	f := newCertFixture(t)
	if _, err := ParseRevocation(f.cert.Marshal()); !errors.Is(err, ErrWrongRecord) {
		t.Errorf("a certificate parsed as a revocation: error %v, want ErrWrongRecord", err)
	}
	if _, err := ParseDeviceCert(f.revoke.Marshal()); !errors.Is(err, ErrWrongRecord) {
		t.Errorf("a revocation parsed as a certificate: error %v, want ErrWrongRecord", err)
	}
	// A signature made in the revocation context over a certificate body
	// does not verify: the kind is inside what is signed.
	c := f.cert
	sig := f.user.Sign(c.body([]byte(revokeContext)))
	copy(c.Signature[:], sig)
	if err := c.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Errorf("a certificate signed in the revocation context: error %v, want ErrBadSignature", err)
	}
}

func TestWrongSigner(t *testing.T) {
	f := newCertFixture(t)
	otherUser, _ := DeriveUser(mustParse(t, vector12).Seed(""))
	c := f.cert
	c.User = otherUser.Public()
	if err := c.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Errorf("a certificate claimed by another user: error %v, want ErrBadSignature", err)
	}
	if _, err := ParseDeviceCert(c.Marshal()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("parsing it: error %v, want ErrBadSignature", err)
	}
	// The device key cannot stand in for the user key.
	c = f.cert
	c.User = UserPublic(f.device.Public())
	copy(c.Signature[:], f.device.Sign(c.signed()))
	if err := c.Verify(); err != nil {
		t.Fatalf("a self-consistent certificate should verify on its own: %v", err)
	}
	if c.User.Equal(f.user.Public()) {
		t.Error("a device-signed certificate claims the user's ID")
	}
	r := f.revoke
	r.Index = 2
	if err := r.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Errorf("a revocation with a changed index: error %v, want ErrBadSignature", err)
	}
}

func TestVersions(t *testing.T) {
	f := newCertFixture(t)
	for _, rec := range []struct {
		name  string
		b     []byte
		at    int
		parse func([]byte) error
	}{
		{"certificate", f.cert.Marshal(), len(certMagic), func(b []byte) error { _, err := ParseDeviceCert(b); return err }},
		{"revocation", f.revoke.Marshal(), len(revokeMagic), func(b []byte) error { _, err := ParseRevocation(b); return err }},
	} {
		for _, v := range []byte{0, 2, 255} {
			b := bytes.Clone(rec.b)
			b[rec.at] = v
			err := rec.parse(b)
			if !errors.Is(err, ErrUnsupportedVersion) {
				t.Errorf("%s version %d: error %v, want ErrUnsupportedVersion", rec.name, v, err)
			}
			if v > 1 && !strings.Contains(err.Error(), "upgrade") {
				t.Errorf("%s version %d: message %q should say to upgrade", rec.name, v, err)
			}
		}
	}
}

func TestMalformedCerts(t *testing.T) {
	f := newCertFixture(t)
	good := f.cert.Marshal()
	nameLenAt := len(certMagic) + 1 + 32 + 32 + 4 + 32
	rolesAt := nameLenAt + 1 + len("laptop")
	cases := map[string][]byte{
		"empty":           nil,
		"other magic":     []byte("kith-cerx\x01"),
		"only the magic":  []byte("kith-cert"),
		"name too long":   func() []byte { b := bytes.Clone(good); b[nameLenAt] = MaxNameBytes + 1; return b }(),
		"name overruns":   func() []byte { b := bytes.Clone(good); b[nameLenAt] = MaxNameBytes; return b }(),
		"too many roles":  func() []byte { b := bytes.Clone(good); b[rolesAt] = MaxRoles + 1; return b }(),
		"empty role":      func() []byte { b := bytes.Clone(good); b[rolesAt+1] = 0; return b }(),
		"role too long":   func() []byte { b := bytes.Clone(good); b[rolesAt+1] = MaxRoleBytes + 1; return b }(),
		"name with ESC":   func() []byte { b := bytes.Clone(good); b[nameLenAt+1] = 0x1b; return b }(),
		"zero user":       func() []byte { b := bytes.Clone(good); copy(b[10:42], make([]byte, 32)); return b }(),
		"recovery index":  func() []byte { b := bytes.Clone(good); copy(b[74:78], []byte{0x7f, 0xff, 0xff, 0xff}); return b }(),
		"two signatures":  append(bytes.Clone(good), good[len(good)-64:]...),
		"revocation size": f.revoke.Marshal()[:RevocationSize-1],
	}
	for name, b := range cases {
		_, err := ParseDeviceCert(b)
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrWrongRecord) {
			t.Errorf("%s: error %v, want ErrMalformed", name, err)
		}
	}
}
