package pairing

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// goldenInvite is signed by key(2) for the user key(1), with the secret
// a0 a1 … af, expiring at 1 800 000 000 (2027-01-15 08:00:00 UTC), reachable
// at 192.0.2.1:4242 and [2001:db8::1]:4242.
func goldenInvite() Invite {
	i := Invite{
		Version: InviteVersion1,
		User:    pub(key(1)),
		UserTag: [UserTagSize]byte{0x8a, 0x88, 0xe3, 0xdd},
		Device:  pub(key(2)),
		Expires: time.Unix(1_800_000_000, 0).UTC(),
		Addrs: []netip.AddrPort{
			netip.MustParseAddrPort("192.0.2.1:4242"),
			netip.MustParseAddrPort("[2001:db8::1]:4242"),
		},
	}
	for k := range i.Secret {
		i.Secret[k] = byte(0xa0 + k)
	}
	i.sign(key(2))
	return i
}

// goldenHex is goldenInvite's binary form, field by field as the package
// comment lays it out.
var goldenHex = strings.Join([]string{
	"01", // version
	"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c", // user: public key of seed 01…01
	"8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394", // device: public key of seed 02…02
	"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",                                 // secret
	"6b49d200",                                                         // expiry 1 800 000 000
	"02",                                                               // two addresses
	"04" + "c0000201" + "1092",                                         // 192.0.2.1:4242
	"06" + "20010db8000000000000000000000001" + "1092",                 // [2001:db8::1]:4242
	// ed25519 signature (deterministic) over "kith/v1/invite\x00" || all of the above
	"ee5010a3ad1b76b8a18d28d0273742d61aa9ab649ebcc43ac774b06be0f34d80" +
		"eda5c39cf83686e3d7c701a3232230075543fa9c0cc21e80c5245c3fa7ed3f0d",
}, "")

const goldenCode = "KITH1:AGFIRY65OQE7DFP5KLNS2PF2LVZMUZYJX4OZIEQ36N2IQANUB5XVZAJZO4HKQ7IXL5LKGVDGYNGH5TGLRWFJDNHOG6RF35QPLOH4TM4UUCQ2FI5EUWTKPKFJVKV2ZLNOV5VUTUQAAICMAAACAEIJEBRAAEG3QAAAAAAAAAAAAAAAAAABCCJO4UAQUOWRW5VYUGGSRUBHG5BNMGVJVNSJ5PGEHLDXJMDL4DZU3AHNUXBZZ6BWQ3R5PRYBUMRSEMAHKVB7VHAMYIPIBRJELQ72P3J7BU"

func TestInviteGolden(t *testing.T) {
	i := goldenInvite()
	if got := hex.EncodeToString(i.Bytes()); got != goldenHex {
		t.Errorf("Bytes:\n got %s\nwant %s", got, goldenHex)
	}
	if got := i.Encode(); got != goldenCode {
		t.Errorf("Encode:\n got %s\nwant %s", got, goldenCode)
	}
	// The golden signature is a valid signature by the device key over the
	// documented message, checked with ed25519 directly.
	raw, _ := hex.DecodeString(goldenHex)
	msg := append([]byte("kith/v1/invite\x00"), raw[:len(raw)-64]...)
	if !ed25519.Verify(key(2).Public().(ed25519.PublicKey), msg, raw[len(raw)-64:]) {
		t.Error("golden signature does not verify over the documented message")
	}
	// The code is the documented prefix and unpadded RFC 4648 base32.
	payload := strings.TrimPrefix(goldenCode, "KITH1:")
	dec, err := base32.StdEncoding.DecodeString(payload + strings.Repeat("=", (8-len(payload)%8)%8))
	if err != nil || !bytes.Equal(dec, raw) {
		t.Errorf("code is not KITH1: + base32(binary): %v", err)
	}
	got, err := ParseInvite(goldenCode, time.Unix(1_799_999_999, 0))
	if err != nil {
		t.Fatalf("ParseInvite(golden): %v", err)
	}
	if !reflect.DeepEqual(got, i) {
		t.Errorf("ParseInvite(golden) = %v, want %v", got, i)
	}
}

func TestInviteRoundTrip(t *testing.T) {
	for _, addrs := range [][]netip.AddrPort{
		typicalAddrs,
		typicalAddrs[:1],
		typicalAddrs[3:],
		{
			netip.MustParseAddrPort("[2001:db8::1]:1"), netip.MustParseAddrPort("[2001:db8::2]:2"),
			netip.MustParseAddrPort("[2001:db8::3]:3"), netip.MustParseAddrPort("[2001:db8::4]:4"),
			netip.MustParseAddrPort("[2001:db8::5]:5"), netip.MustParseAddrPort("[2001:db8::6]:6"),
			netip.MustParseAddrPort("[2001:db8::7]:7"), netip.MustParseAddrPort("[ff::8]:65535"),
		},
	} {
		i, err := newInvite(InviteVersion1, pub(key(1)), key(2), addrs, 10*time.Minute, t0)
		if err != nil {
			t.Fatalf("newInvite(1, %v): %v", addrs, err)
		}
		if !i.Expires.Equal(t0.Add(10 * time.Minute)) {
			t.Errorf("Expires = %v, want %v", i.Expires, t0.Add(10*time.Minute))
		}
		code := i.Encode()
		got, err := ParseInvite(code, t0.Add(9*time.Minute))
		if err != nil {
			t.Fatalf("ParseInvite(%s): %v", code, err)
		}
		if !reflect.DeepEqual(got, i) {
			t.Errorf("round trip changed the invite:\n got %#v\nwant %#v", got, i)
		}
		if got.Secret != i.Secret {
			t.Error("round trip changed the secret")
		}
		if n := len(i.Bytes()); n < minInviteLen || n > maxInviteLen {
			t.Errorf("binary length %d outside [%d, %d]", n, minInviteLen, maxInviteLen)
		}
	}
}

func TestNewInviteSecretsDiffer(t *testing.T) {
	a, err := NewInvite(pub(key(1)), key(2), typicalAddrs, time.Minute, t0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewInvite(pub(key(1)), key(2), typicalAddrs, time.Minute, t0)
	if err != nil {
		t.Fatal(err)
	}
	if a.Secret == b.Secret || a.Secret == (Secret{}) {
		t.Error("two invites share a secret, or the secret is zero")
	}
}

func TestNewInviteAddrs(t *testing.T) {
	mapped := netip.MustParseAddrPort("[::ffff:192.0.2.7]:99")
	i, err := NewInvite(pub(key(1)), key(2), []netip.AddrPort{mapped, netip.MustParseAddrPort("192.0.2.7:99")}, time.Minute, t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.7:99")}; !reflect.DeepEqual(i.Addrs, want) {
		t.Errorf("Addrs = %v, want %v (unmapped, deduplicated)", i.Addrs, want)
	}

	nine := make([]netip.AddrPort, 9)
	for k := range nine {
		nine[k] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(k + 1)}), 1)
	}
	for name, tc := range map[string]struct {
		dev   ed25519.PrivateKey
		addrs []netip.AddrPort
		ttl   time.Duration
	}{
		"short key":   {key(2)[:32], typicalAddrs, time.Minute},
		"no ttl":      {key(2), typicalAddrs, 0},
		"no addrs":    {key(2), nil, time.Minute},
		"nine addrs":  {key(2), nine, time.Minute},
		"zone":        {key(2), []netip.AddrPort{netip.MustParseAddrPort("[fe80::1%eth0]:1")}, time.Minute},
		"port 0":      {key(2), []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:0")}, time.Minute},
		"unspecified": {key(2), []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:1")}, time.Minute},
		"zero":        {key(2), []netip.AddrPort{{}}, time.Minute},
		"multicast":   {key(2), []netip.AddrPort{netip.MustParseAddrPort("[ff02::1]:1")}, time.Minute},
		"past 2106":   {key(2), typicalAddrs, 100 * 365 * 24 * time.Hour},
	} {
		if _, err := newInvite(InviteVersion1, pub(key(1)), tc.dev, tc.addrs, tc.ttl, t0); err == nil {
			t.Errorf("%s: NewInvite succeeded, want an error", name)
		} else if !strings.HasPrefix(err.Error(), "pairing: making an invite: ") {
			t.Errorf("%s: error %q lacks the package context", name, err)
		}
	}
}

func TestParseInviteForgiving(t *testing.T) {
	i := goldenInvite()
	code := i.Encode()
	var spaced strings.Builder
	for k, r := range code {
		if k > 0 && k%16 == 0 {
			spaced.WriteString([]string{" ", "\n", "\t", "\r\n", "  "}[k/16%5])
		}
		spaced.WriteRune(r)
	}
	now := i.Expires.Add(-time.Second)
	for name, text := range map[string]string{
		"exact":                         code,
		"lower case":                    strings.ToLower(code),
		"spaces":                        spaced.String(),
		"lower with spaces and margins": "\n  " + strings.ToLower(spaced.String()) + "  \n",
		"padded":                        code + "===",
		"mixed case prefix":             "Kith1:" + code[len(CodePrefixV1):],
	} {
		got, err := ParseInvite(text, now)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !got.Equal(i) {
			t.Errorf("%s: parsed a different invite", name)
		}
	}
}

func TestParseInviteExpired(t *testing.T) {
	i := goldenInvite() // expires 2027-01-15 08:00:00 UTC
	if _, err := ParseInvite(i.Encode(), i.Expires.Add(-time.Second)); err != nil {
		t.Fatalf("one second before expiry: %v", err)
	}
	for _, now := range []time.Time{i.Expires, i.Expires.Add(time.Minute)} {
		_, err := ParseInvite(i.Encode(), now)
		if !errors.Is(err, ErrExpired) || Reason(err) != "expired" {
			t.Fatalf("at %v: err = %v, want ErrExpired", now, err)
		}
		if want := "pairing: the invite expired at 08:00 UTC: ask for a fresh code"; err.Error() != want {
			t.Errorf("message %q, want %q", err, want)
		}
	}
	_, err := ParseInvite(i.Encode(), i.Expires.Add(72*time.Hour))
	if !strings.Contains(fmt.Sprint(err), "2027-01-15 08:00 UTC") {
		t.Errorf("an invite expired days ago should name the day: %v", err)
	}
}

// TestParseInviteTampered flips every byte of the binary form, and every bit
// of it, and checks that nothing altered is ever accepted, and that an
// alteration of a signed field, which keeps the layout, is told as tampering.
func TestParseInviteTampered(t *testing.T) {
	i := goldenInvite()
	raw := i.Bytes()
	now := i.Expires.Add(-time.Hour)
	// Ranges where any change keeps the layout valid: only the signature
	// can catch it. (The first byte of the IPv4 address is not one: 192
	// with bit 5 flipped is 224, a multicast address, refused as such.)
	signedOnly := func(off int) bool {
		return (off >= 1 && off < 85) || // user, device, secret, expiry
			(off >= 88 && off < 93) || // rest of 192.0.2.1, port
			(off >= 94 && off < 112) || // 2001:db8::1, port
			off >= len(raw)-64 // the signature itself
	}
	try := func(mod []byte, off int, how string) {
		_, err := ParseInvite(CodePrefixV1+b32.EncodeToString(mod), now)
		switch {
		case err == nil:
			t.Fatalf("byte %d %s: accepted", off, how)
		case signedOnly(off) && !errors.Is(err, ErrTampered):
			t.Errorf("byte %d %s: %v, want ErrTampered", off, how, err)
		case !errors.Is(err, ErrTampered) && !errors.Is(err, ErrMalformed):
			t.Errorf("byte %d %s: %v, want ErrTampered or ErrMalformed", off, how, err)
		}
	}
	for off := range raw {
		mod := bytes.Clone(raw)
		mod[off] ^= 0xff
		try(mod, off, "inverted")
		for bit := range 8 {
			mod := bytes.Clone(raw)
			mod[off] ^= 1 << bit
			try(mod, off, fmt.Sprintf("bit %d flipped", bit))
		}
	}
	_, err := ParseInvite(i.Encode(), now)
	if err != nil {
		t.Fatal(err)
	}
	mod := bytes.Clone(raw)
	mod[70] ^= 1 // in the secret
	_, err = ParseInvite(CodePrefixV1+b32.EncodeToString(mod), now)
	if want := "pairing: the invite was altered or damaged (its signature does not verify): ask for a fresh code"; err == nil || err.Error() != want || Reason(err) != "tampered" {
		t.Errorf("tampered: %v, want %q", err, want)
	}
}

func TestParseInviteMalformed(t *testing.T) {
	i := goldenInvite()
	raw := i.Bytes()
	now := i.Expires.Add(-time.Hour)
	code := i.Encode()
	// resign builds a binary form from raw's fields with changes, signed
	// properly, so that only the change can be refused.
	resign := func(change func(unsigned []byte) []byte) string {
		u := change(bytes.Clone(raw[:len(raw)-64]))
		sig := ed25519.Sign(key(2), append([]byte(inviteSigLabel), u...))
		return CodePrefixV1 + b32.EncodeToString(append(u, sig...))
	}
	nineAddrs := resign(func(u []byte) []byte {
		u = u[:85]
		u = append(u, 9)
		for k := range 9 {
			u = append(u, 4, 192, 0, 2, byte(k+1), 0, 1)
		}
		return u
	})
	cases := map[string]string{
		"empty":            "",
		"word":             "hello",
		"url":              "https://example.com/",
		"other version":    "KITH3:" + code[len(CodePrefix):],
		"no prefix":        code[len(CodePrefix):],
		"bad base32":       CodePrefix + "01890189" + code[len(CodePrefix)+8:],
		"cut short":        code[:len(code)-10],
		"cut to prefix":    CodePrefix,
		"one char less":    code[:len(code)-1],
		"extra characters": code + "AAAAAAAA",
		"too long":         code + strings.Repeat("A", 500),
		"huge paste":       strings.Repeat(" ", maxPastedLen) + code,
		"version 2":        resign(func(u []byte) []byte { u[0] = 2; return u }),
		"no addresses":     resign(func(u []byte) []byte { u = u[:85]; return append(u, 0, 4, 192, 0, 2, 1, 0, 1) }),
		"nine addresses":   nineAddrs,
		"unknown family":   resign(func(u []byte) []byte { u[86] = 5; return u }),
		"port zero":        resign(func(u []byte) []byte { u[91], u[92] = 0, 0; return u }),
		"unspecified":      resign(func(u []byte) []byte { copy(u[87:91], []byte{0, 0, 0, 0}); return u }),
		"trailing byte":    resign(func(u []byte) []byte { return append(u, 0) }),
		"mapped IPv6": resign(func(u []byte) []byte {
			m := netip.MustParseAddr("::ffff:192.0.2.1").As16()
			copy(u[94:110], m[:])
			return u
		}),
		"count too high": resign(func(u []byte) []byte { u[85] = 3; return u }),
	}
	// A last character with non-zero spare bits decodes to the same bytes
	// but is not the canonical code.
	last := code[len(code)-1]
	alt := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", last) ^ 1
	cases["non-canonical last character"] = code[:len(code)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[alt])

	secretB32 := b32.EncodeToString(raw[65:81])[:8]
	for name, text := range cases {
		_, err := ParseInvite(text, now)
		if !errors.Is(err, ErrMalformed) || Reason(err) != "malformed" {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "pairing: not a kith invite: ") {
			t.Errorf("%s: message %q does not say it is not a kith invite", name, msg)
		}
		if strings.Contains(msg, code[len(CodePrefix):len(CodePrefix)+12]) || strings.Contains(msg, secretB32) {
			t.Errorf("%s: message %q quotes the code", name, msg)
		}
	}
}

func TestVerifyChecksHandMadeInvites(t *testing.T) {
	i := goldenInvite()
	now := i.Expires.Add(-time.Hour)
	j := i
	j.Addrs = nil
	if err := j.Verify(now); !errors.Is(err, ErrMalformed) {
		t.Errorf("no addresses: %v", err)
	}
	j = i
	j.Addrs = append([]netip.AddrPort{netip.MustParseAddrPort("192.0.2.99:1")}, i.Addrs...)
	if err := j.Verify(now); !errors.Is(err, ErrTampered) {
		t.Errorf("added address: %v", err)
	}
	j = i
	j.Expires = time.Unix(-1, 0)
	if err := j.Verify(now); !errors.Is(err, ErrMalformed) {
		t.Errorf("negative expiry: %v", err)
	}
	if err := i.Verify(now); err != nil {
		t.Errorf("golden: %v", err)
	}
}

// TestSecretNeverPrinted formats an invite, its secret and a profile every
// way a program might log them, and looks for the secret in any of its
// usual spellings.
func TestSecretNeverPrinted(t *testing.T) {
	i := goldenInvite()
	s := i.Secret[:]
	dec := strings.Trim(fmt.Sprint([]byte(s)), "[]") // "160 161 162 …"
	leaks := []string{
		hex.EncodeToString(s), strings.ToUpper(hex.EncodeToString(s)), dec,
		fmt.Sprintf("%#v", []byte(s))[7:40],
		b32.EncodeToString(s)[:10], i.Encode()[len(CodePrefix):][100:130],
		"0xa0, 0xa1", "a0 a1 a2",
	}
	window := bytes.Repeat([]byte{0xa5}, 32)
	prof := &Profile{Name: "Ana", Window: window}
	leaks = append(leaks, hex.EncodeToString(window), strings.Trim(fmt.Sprint(window), "[]"))
	hello := Hello{Invite: i.Encode(), Proof: []byte{1}, Profile: prof}
	reply := Reply{Status: StatusPaired, Proof: []byte{1}, Profile: prof}

	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		for _, v := range []any{i, &i, i.Secret, &i.Secret, *prof, prof, hello, &hello, reply, &reply, []Invite{i}, struct{ I Invite }{i}} {
			outs = append(outs, fmt.Sprintf(verb, v))
		}
	}
	js, err := json.Marshal(i)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(js), i.String())
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
		slog.New(h).Info("pairing", "invite", i, "secret", i.Secret, "profile", prof, "hello", hello, "reply", reply)
	}
	outs = append(outs, logs.String())
	for _, out := range outs {
		for _, leak := range leaks {
			if strings.Contains(out, leak) {
				t.Errorf("output %q contains the secret as %q", out, leak)
			}
		}
	}
	if !strings.Contains(fmt.Sprintf("%v", i), "8a88e3dd") {
		t.Errorf("String should still show the user: %v", i)
	}
	if !strings.Contains(logs.String(), "Secret(redacted)") {
		t.Errorf("logs should say the secret was redacted: %s", logs.String())
	}
}

func TestReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{io.EOF, ""},
		{ErrNoQRCode, ""},
		{fmt.Errorf("x: %w", ErrMalformed), "malformed"},
		{refuse(ErrTampered, "t"), "tampered"},
		{expired(t0, t0, "the invite"), "expired"},
		{fmt.Errorf("agent: %w", ErrReused), "reused"},
		{ErrForeign, "foreign"},
		{fmt.Errorf("pairing: %w: user 1234", ErrBlocked), "blocked"},
		{remoteRefusal("nonsense"), "refused"},
		{remoteRefusal("expired"), "expired"},
	} {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestBinaryLayout rebuilds the binary form from the fields by the package
// comment's table, independently of Bytes.
func TestBinaryLayout(t *testing.T) {
	i, err := newInvite(InviteVersion1, pub(key(7)), key(8), typicalAddrs, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	want = append(want, 1)
	want = append(want, i.User[:]...)
	want = append(want, i.Device[:]...)
	want = append(want, i.Secret[:]...)
	want = binary.BigEndian.AppendUint32(want, uint32(t0.Unix()+3600))
	want = append(want, 4)
	want = append(want, 4, 192, 168, 1, 23, 41641>>8, 41641&0xff)
	want = append(want, 4, 10, 0, 0, 7, 41641>>8, 41641&0xff)
	want = append(want, 4, 203, 0, 113, 9, 50211>>8, 50211&0xff)
	want = append(want, 6, 0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 41641>>8, 41641&0xff)
	want = append(want, i.Sig[:]...)
	if got := i.Bytes(); !bytes.Equal(got, want) {
		t.Errorf("Bytes:\n got %x\nwant %x", got, want)
	}
	if n := len(i.Encode()); n != 310 {
		t.Errorf("typical code is %d characters; the package comment says 310", n)
	}
}
