package pairing

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// goldenInviteV2 is goldenInvite in version 2: device key(2), the tag of user
// key(1), the secret a0 a1 … af, expiring at 1 800 000 000, reachable at
// 192.0.2.1:4242 and [2001:db8::1]:4242.
func goldenInviteV2() Invite {
	i := Invite{
		Version: InviteVersion,
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
	return i
}

// goldenHexV2 is goldenInviteV2's binary form, field by field as the package
// comment lays it out; the check was computed apart, with Python's hashlib.
var goldenHexV2 = strings.Join([]string{
	"8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394", // device: public key of seed 02…02
	"8a88e3dd",                         // user tag: the first 4 bytes of the public key of seed 01…01
	"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", // secret
	"6b49d200",                         // expiry 1 800 000 000
	"11",                               // one IPv4 address, one IPv6 address
	"c0000201" + "1092",                // 192.0.2.1:4242
	"20010db8000000000000000000000001" + "1092", // [2001:db8::1]:4242
	"ec6abe0a", // SHA-256("kith/v2/invite-check\x00" || all of the above)[:4]
}, "")

const goldenCodeV2 = "KITH2:QE4XODVIPULV6VVDKRTMGTD6ZTFY3CURWTXDPIS56YHVXD6JWOKIVCHD3WQKDIVDUSS2NJ5IVGVKXLFNV2XWWSOSAAI4AAACAEIJEIABBW4AAAAAAAAAAAAAAAAAAAIQSLWGVPQK"

func TestInviteGoldenV2(t *testing.T) {
	i := goldenInviteV2()
	if got := hex.EncodeToString(i.Bytes()); got != goldenHexV2 {
		t.Errorf("Bytes:\n got %s\nwant %s", got, goldenHexV2)
	}
	if got := i.Encode(); got != goldenCodeV2 {
		t.Errorf("Encode:\n got %s\nwant %s", got, goldenCodeV2)
	}
	got, err := ParseInvite(goldenCodeV2, time.Unix(1_799_999_999, 0))
	if err != nil {
		t.Fatalf("ParseInvite(golden): %v", err)
	}
	if !reflect.DeepEqual(got, i) {
		t.Errorf("ParseInvite(golden) = %#v, want %#v", got, i)
	}
	if !got.MatchesUser(pub(key(1))) || got.MatchesUser(pub(key(3))) {
		t.Error("MatchesUser does not go by the user tag")
	}
	// Version 1 is still read, and both versions of one invite are told
	// apart.
	v1, err := ParseInvite(goldenCode, time.Unix(1_799_999_999, 0))
	if err != nil || v1.Version != InviteVersion1 || !v1.MatchesUser(pub(key(1))) || v1.UserTag != got.UserTag {
		t.Fatalf("version 1: %v, %v", v1, err)
	}
}

func TestNewInviteV2(t *testing.T) {
	v6 := netip.MustParseAddrPort("[2001:db8::1]:1")
	for _, tc := range []struct {
		in, want []netip.AddrPort
	}{
		{typicalAddrs, typicalAddrs[:3]},                                    // IPv6 dropped, three kept
		{[]netip.AddrPort{v6, typicalAddrs[0]}, typicalAddrs[:1]},           // IPv6 dropped when IPv4 exists
		{[]netip.AddrPort{v6}, []netip.AddrPort{v6}},                        // kept when it is all there is
		{append(typicalAddrs[:3:3], typicalAddrs[:3]...), typicalAddrs[:3]}, // duplicates
	} {
		i, err := NewInvite(pub(key(1)), key(2), tc.in, time.Minute, t0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(i.Addrs, tc.want) {
			t.Errorf("NewInvite(%v) keeps %v, want %v", tc.in, i.Addrs, tc.want)
		}
		if i.Version != InviteVersion || i.User != (Invite{}).User || !i.MatchesUser(pub(key(1))) {
			t.Errorf("NewInvite: %v", i)
		}
		got, err := ParseInvite(i.Encode(), t0)
		if err != nil || !reflect.DeepEqual(got, i) {
			t.Fatalf("round trip: %v, %v", got, err)
		}
		if n := len(i.Bytes()); n < minInviteV2 || n > maxInviteV2 {
			t.Errorf("binary length %d outside [%d, %d]", n, minInviteV2, maxInviteV2)
		}
	}
}

// Every alteration of a byte of a version 2 invite is refused as tampered:
// the checksum is checked first. So is a code cut short that is still as
// long as an invite can be ("copy the whole code").
func TestParseInviteTamperedV2(t *testing.T) {
	i := goldenInviteV2()
	raw := i.Bytes()
	now := i.Expires.Add(-time.Hour)
	for off := range raw {
		for _, mask := range []byte{0xff, 1, 2, 4, 8, 16, 32, 64, 128} {
			mod := bytes.Clone(raw)
			mod[off] ^= mask
			_, err := ParseInvite(CodePrefix+b32.EncodeToString(mod), now)
			if !errors.Is(err, ErrTampered) || Reason(err) != "tampered" {
				t.Fatalf("byte %d ^ %#x: %v, want ErrTampered", off, mask, err)
			}
		}
	}
	if _, err := ParseInvite(raw2code(raw[:len(raw)-10]), now); !errors.Is(err, ErrTampered) {
		t.Errorf("cut by 10 bytes: %v, want ErrTampered", err)
	}
}

// withCheck appends the right checksum to a hand-made version 2 body, so
// that only what is wrong in it can be refused.
func withCheck(body []byte) string {
	c := checksum(body)
	return CodePrefix + b32.EncodeToString(append(bytes.Clone(body), c[:]...))
}

func TestParseInviteMalformedV2(t *testing.T) {
	i := goldenInviteV2()
	raw := i.Bytes()
	body := raw[:len(raw)-checkLen]
	now := i.Expires.Add(-time.Hour)
	change := func(f func(b []byte) []byte) string { return withCheck(f(bytes.Clone(body))) }
	four := func(b []byte) []byte {
		b = b[:56]
		b = append(b, 0x40)
		for k := range 4 {
			b = append(b, 192, 0, 2, byte(k+1), 0, 1)
		}
		return b
	}
	for name, code := range map[string]string{
		"cut short":        raw2code(raw[:minInviteV2-1]),
		"too long":         raw2code(append(bytes.Clone(raw), make([]byte, 40)...)),
		"no addresses":     change(func(b []byte) []byte { b = b[:56]; return append(b, 0x00) }),
		"four addresses":   change(four),
		"count too high":   change(func(b []byte) []byte { b[56] = 0x21; return b }),
		"count too low":    change(func(b []byte) []byte { b[56] = 0x10; return b }),
		"trailing byte":    change(func(b []byte) []byte { return append(b, 0) }),
		"port zero":        change(func(b []byte) []byte { b[61], b[62] = 0, 0; return b }),
		"unspecified IPv4": change(func(b []byte) []byte { copy(b[57:61], []byte{0, 0, 0, 0}); return b }),
		"multicast IPv4":   change(func(b []byte) []byte { b[57] = 224; return b }),
		"mapped IPv6": change(func(b []byte) []byte {
			m := netip.MustParseAddr("::ffff:192.0.2.1").As16()
			copy(b[63:79], m[:])
			return b
		}),
		"other version":     "KITH3:" + goldenCodeV2[len(CodePrefix):],
		"version 1 payload": CodePrefixV1 + goldenCodeV2[len(CodePrefix):],
	} {
		_, err := ParseInvite(code, now)
		if !errors.Is(err, ErrMalformed) || Reason(err) != "malformed" {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
		if err != nil && strings.Contains(err.Error(), code[6:20]) {
			t.Errorf("%s: the error quotes the code", name)
		}
	}
	// Expired: refused with its reason, as in version 1.
	if _, err := ParseInvite(goldenCodeV2, i.Expires); !errors.Is(err, ErrExpired) {
		t.Errorf("at expiry: %v, want ErrExpired", err)
	}
}

func raw2code(b []byte) string { return CodePrefix + b32.EncodeToString(b) }

// TestBinaryLayoutV2 rebuilds a version 2 binary form from the fields by
// the package comment's table, independently of Bytes.
func TestBinaryLayoutV2(t *testing.T) {
	i, err := NewInvite(pub(key(7)), key(8), typicalAddrs, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	u := pub(key(7))
	var want []byte
	want = append(want, i.Device[:]...)
	want = append(want, u[:4]...)
	want = append(want, i.Secret[:]...)
	want = append(want, byte((t0.Unix()+3600)>>24), byte((t0.Unix()+3600)>>16), byte((t0.Unix()+3600)>>8), byte(t0.Unix()+3600))
	want = append(want, 0x30)
	want = append(want, 192, 168, 1, 23, 41641>>8, 41641&0xff)
	want = append(want, 10, 0, 0, 7, 41641>>8, 41641&0xff)
	want = append(want, 203, 0, 113, 9, 50211>>8, 50211&0xff)
	c := checksum(want)
	want = append(want, c[:]...)
	if got := i.Bytes(); !bytes.Equal(got, want) {
		t.Errorf("Bytes:\n got %x\nwant %x", got, want)
	}
	if n := len(i.Bytes()); n != 79 {
		t.Errorf("typical invite is %d bytes; the package comment implies 79", n)
	}
	if n := len(i.Encode()); n != 133 {
		t.Errorf("typical code is %d characters; the package comment says 133", n)
	}
	if s := fmt.Sprint(i); !strings.HasPrefix(s, "invite v2 user ") || strings.Contains(s, hex.EncodeToString(i.Secret[:])) {
		t.Errorf("String of a version 2 invite: %q", s)
	}
}
