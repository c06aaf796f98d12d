package roster

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/kith-project/kith/seed"
)

func newUser(t testing.TB) seed.UserKey {
	t.Helper()
	p, err := seed.Generate(12)
	if err != nil {
		t.Fatal(err)
	}
	u, err := seed.DeriveUser(p.Seed(""))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// certOf issues user's certificate for device key id(dev) at index.
func certOf(t testing.TB, u seed.UserKey, dev byte, index uint32, name string, at time.Time) seed.DeviceCert {
	t.Helper()
	c, err := u.IssueDeviceCert(seed.DeviceCert{Device: id(dev), Index: index, Archive: id(dev ^ 0xff), Name: name, Issued: at})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func revOf(t testing.TB, u seed.UserKey, dev byte, index uint32) seed.Revocation {
	t.Helper()
	r, err := u.Revoke(seed.Revocation{Device: id(dev), Index: index, Revoked: time.Unix(2e9, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func signedOf(t testing.TB, u seed.UserKey, certs []seed.DeviceCert, revs []seed.Revocation) []byte {
	t.Helper()
	s, err := NewSigned(u.Public(), certs, revs)
	if err != nil {
		t.Fatal(err)
	}
	return s.Marshal()
}

var t0 = time.Unix(1.9e9, 0)

func TestSignedRoundTripAndCanonical(t *testing.T) {
	u := newUser(t)
	// Given out of order, twice for device 3 (the newer kept).
	certs := []seed.DeviceCert{certOf(t, u, 3, 3, "old", t0), certOf(t, u, 1, 1, "one", t0), certOf(t, u, 3, 3, "new", t0.Add(time.Hour))}
	revs := []seed.Revocation{revOf(t, u, 9, 9), revOf(t, u, 3, 3)}
	b := signedOf(t, u, certs, revs)
	s, err := ParseSigned(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Certs) != 2 || s.Certs[0].Index != 1 || s.Certs[1].Name != "new" || len(s.Revocations) != 2 || s.Revocations[0].Index != 3 {
		t.Fatalf("parsed %+v", s)
	}
	if !bytes.Equal(s.Marshal(), b) {
		t.Fatal("the binary form is not canonical")
	}
	if s.Digest() != sha(b) {
		t.Fatal("digest")
	}
	empty := signedOf(t, u, nil, nil)
	if len(empty) != len(signedMagic)+1+32+2 {
		t.Fatalf("an empty roster is %d bytes", len(empty))
	}
}

// Forged, foreign, reordered, oversized and truncated documents are refused.
func TestSignedRefusals(t *testing.T) {
	u, mallory := newUser(t), newUser(t)
	good := signedOf(t, u, []seed.DeviceCert{certOf(t, u, 1, 1, "a", t0), certOf(t, u, 2, 2, "b", t0)}, []seed.Revocation{revOf(t, u, 2, 2)})
	if _, err := NewSigned(u.Public(), []seed.DeviceCert{certOf(t, mallory, 5, 5, "m", t0)}, nil); !errors.Is(err, ErrBadRoster) {
		t.Errorf("a foreign certificate: %v", err)
	}
	if _, err := NewSigned(u.Public(), nil, []seed.Revocation{revOf(t, mallory, 1, 1)}); !errors.Is(err, ErrBadRoster) {
		t.Errorf("a foreign revocation: %v", err)
	}
	// Mallory's records under u's user ID: splice u's user into a document
	// of Mallory's.
	foreign := signedOf(t, mallory, []seed.DeviceCert{certOf(t, mallory, 1, 1, "a", t0)}, nil)
	pub := u.Public()
	copy(foreign[len(signedMagic)+1:], pub[:])
	forged := bytes.Clone(good)
	forged[len(forged)-1] ^= 1 // the revocation's signature
	certSig := bytes.Clone(good)
	certSig[len(signedMagic)+1+32+1+2+10] ^= 1 // inside the first certificate
	swapped := signedOf(t, u, []seed.DeviceCert{certOf(t, u, 1, 1, "a", t0), certOf(t, u, 2, 2, "b", t0)}, nil)
	// Swap the two certificates, which have the same length.
	off := len(signedMagic) + 1 + 32 + 1
	l := int(swapped[off])<<8 | int(swapped[off+1])
	first := bytes.Clone(swapped[off : off+2+l])
	copy(swapped[off:], swapped[off+2+l:off+4+2*l])
	copy(swapped[off+2+l:], first)
	cases := map[string][]byte{
		"forged revocation":   forged,
		"forged certificate":  certSig,
		"foreign records":     foreign,
		"out of order":        swapped,
		"trailing byte":       append(bytes.Clone(good), 0),
		"truncated":           good[:len(good)-1],
		"empty":               nil,
		"other magic":         append([]byte("kith-rostex"), good[len(signedMagic):]...),
		"version 2":           append(append([]byte(signedMagic), 2), good[len(signedMagic)+1:]...),
		"too many certs":      append(append([]byte(signedMagic), 1), append(pub[:], MaxSignedCerts+1)...),
		"oversized":           make([]byte, MaxSignedSize+1),
		"cert length too big": append(append(append([]byte(signedMagic), 1), pub[:]...), 1, 0xff, 0xff),
	}
	for name, b := range cases {
		if _, err := ParseSigned(b); !errors.Is(err, ErrBadRoster) {
			t.Errorf("%s: %v", name, err)
		}
	}
	many := make([]seed.DeviceCert, MaxSignedCerts+1)
	for i := range many {
		many[i] = certOf(t, u, byte(i+1), uint32(i), "", t0)
	}
	if _, err := NewSigned(u.Public(), many, nil); !errors.Is(err, ErrBadRoster) {
		t.Errorf("more than %d certificates: %v", MaxSignedCerts, err)
	}
	if s, err := NewSigned(u.Public(), many[:MaxSignedCerts], nil); err != nil || len(s.Marshal()) > MaxSignedSize {
		t.Errorf("%d certificates: %v", MaxSignedCerts, err)
	}
}

// mergeFixture is alice's roster on bob's side: bob (f.user) has paired
// with alice's device 10.
func mergeFixture(t *testing.T) (*fixture, seed.UserKey) {
	f := newFixture(t)
	alice := newUser(t)
	d := Device{DeviceID: id(10), UserID: alice.Public(), Kind: KindFriend, Name: "alice-0"}
	fr := Friend{UserID: alice.Public(), Name: "alice", Status: StatusFriend, PairedAt: t0}
	if err := f.apply(t, Change{Op: OpPair, Device: &d, Friend: &fr}); err != nil {
		t.Fatal(err)
	}
	return f, alice
}

// A friend's roster adds their other devices; a revocation in a later one
// makes the device unreachable for good: the older roster replayed, and a
// re-pairing, do not bring it back, and a reload keeps it so.
func TestMergeFriendRosterMonotonic(t *testing.T) {
	f, alice := mergeFixture(t)
	c10, c11 := certOf(t, alice, 10, 0, "alice-0", t0), certOf(t, alice, 11, 1, "alice-1", t0)
	v1 := signedOf(t, alice, []seed.DeviceCert{c10, c11}, nil)
	if err := f.apply(t, Change{Op: OpMerge, Roster: v1}); err != nil {
		t.Fatal(err)
	}
	d, ok := f.r.Reachable(id(11))
	if !ok || d.Kind != KindFriend || !d.UserID.Equal(alice.Public()) || d.Name != "alice-1" || len(d.Cert) == 0 {
		t.Fatalf("alice-1 after the merge: %+v %v", d, ok)
	}
	v2 := signedOf(t, alice, []seed.DeviceCert{c10, c11}, []seed.Revocation{revOf(t, alice, 11, 1)})
	if err := f.apply(t, Change{Op: OpMerge, Roster: v2}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.r.Reachable(id(11)); ok || !f.r.Revoked(id(11)) {
		t.Fatal("a revoked device is still reachable")
	}
	// The old roster, without the revocation, again.
	if err := f.apply(t, Change{Op: OpMerge, Roster: v1}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Roster{f.r, f.reload(t)} {
		if _, ok := r.Reachable(id(11)); ok || !r.Revoked(id(11)) {
			t.Fatal("an old roster brought a revoked device back")
		}
		if _, ok := r.Reachable(id(10)); !ok {
			t.Fatal("alice-0 went")
		}
	}
	p := Device{DeviceID: id(11), UserID: alice.Public(), Kind: KindFriend}
	fr, _ := f.r.Friend(alice.Public())
	if err := f.apply(t, Change{Op: OpPair, Device: &p, Friend: &fr}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("pairing again with a revoked device: %v", err)
	}
	// What bob passes on of alice carries the revocation too.
	s, err := f.r.SignedOf(alice.Public(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Revoked(id(11)); !ok || len(s.Certs) != 2 {
		t.Fatalf("bob's copy of alice's roster: %+v", s)
	}
}

// A friend can neither add nor revoke another user's devices, and a
// stranger's roster is refused.
func TestMergeForeignRefused(t *testing.T) {
	f, alice := mergeFixture(t)
	carol := newUser(t)
	cd := Device{DeviceID: id(20), UserID: carol.Public(), Kind: KindFriend, Name: "carol-0"}
	cf := Friend{UserID: carol.Public(), Name: "carol", Status: StatusFriend, PairedAt: t0}
	if err := f.apply(t, Change{Op: OpPair, Device: &cd, Friend: &cf}); err != nil {
		t.Fatal(err)
	}
	// Carol certifies and revokes alice's device key 10 as hers, and bob's
	// own key 30.
	evil := signedOf(t, carol, []seed.DeviceCert{certOf(t, carol, 10, 0, "x", t0), certOf(t, carol, 30, 0, "y", t0)},
		[]seed.Revocation{revOf(t, carol, 10, 0), revOf(t, carol, 40, 0)})
	if err := f.apply(t, Change{Op: OpMerge, Roster: evil}); err != nil {
		t.Fatal(err)
	}
	if d, ok := f.r.Reachable(id(10)); !ok || !d.UserID.Equal(alice.Public()) {
		t.Fatalf("carol's roster took alice's device: %+v %v", d, ok)
	}
	if f.r.Revoked(id(40)) {
		t.Fatal("carol revoked a device that is not hers")
	}
	// A stranger's roster.
	dave := newUser(t)
	if err := f.apply(t, Change{Op: OpMerge, Roster: signedOf(t, dave, []seed.DeviceCert{certOf(t, dave, 50, 0, "d", t0)}, nil)}); !errors.Is(err, ErrNoFriend) {
		t.Fatalf("a stranger's roster: %v", err)
	}
	if err := f.apply(t, Change{Op: OpMerge, Roster: []byte("kith-roster\x01")}); !errors.Is(err, ErrBadChange) {
		t.Fatalf("a malformed roster: %v", err)
	}
	// alice pairs in person with the key carol claimed (id 30): carol's
	// revocation of it does not stand in the way.
	p := Device{DeviceID: id(30), UserID: alice.Public(), Kind: KindFriend}
	fr, _ := f.r.Friend(alice.Public())
	f.r.revoked[id(30)] = revOf(t, carol, 30, 0) // as if carol's roster had revoked it
	if err := f.apply(t, Change{Op: OpPair, Device: &p, Friend: &fr}); err != nil {
		t.Fatalf("carol's claim stopped a pairing in person: %v", err)
	}
	if d, ok := f.reload(t).Reachable(id(30)); !ok || !d.UserID.Equal(alice.Public()) {
		t.Fatalf("after pairing in person: %+v %v", d, ok)
	}
}

// Our own roster adds our other devices as own, never the local one, and
// says when the local device was revoked.
func TestMergeOwnRoster(t *testing.T) {
	f := newFixture(t)
	f.r = f.r.WithLocal(id(1))
	own := signedOf(t, f.user, []seed.DeviceCert{certOf(t, f.user, 1, 0, "here", t0), certOf(t, f.user, 2, 1, "there", t0)}, nil)
	if err := f.apply(t, Change{Op: OpMerge, Roster: own}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.r.Device(id(1)); ok {
		t.Fatal("the local device was listed as a peer")
	}
	if d, ok := f.r.Reachable(id(2)); !ok || d.Kind != KindOwn {
		t.Fatalf("the other own device: %+v %v", d, ok)
	}
	if _, ok := f.r.LocalRevoked(); ok {
		t.Fatal("revoked before any revocation")
	}
	if err := f.apply(t, Change{Op: OpMerge, Roster: signedOf(t, f.user, nil, []seed.Revocation{revOf(t, f.user, 1, 0)})}); err != nil {
		t.Fatal(err)
	}
	if rev, ok := f.r.LocalRevoked(); !ok || rev.Index != 0 {
		t.Fatal("the local device's revocation was not noticed")
	}
}

func sha(b []byte) [32]byte { return sha256.Sum256(b) }

// Run longer with:
//
//	go test ./roster -run '^$' -fuzz '^FuzzParseSigned$' -fuzztime 1m
func FuzzParseSigned(f *testing.F) {
	u := newUser(f)
	f.Add(signedOf(f, u, nil, nil))
	f.Add(signedOf(f, u, []seed.DeviceCert{certOf(f, u, 1, 1, "a", t0), certOf(f, u, 2, 2, "b", t0)}, []seed.Revocation{revOf(f, u, 2, 2)}))
	f.Add([]byte("kith-roster\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSigned(b)
		if err != nil {
			if !errors.Is(err, ErrBadRoster) {
				t.Fatalf("error %v does not wrap ErrBadRoster", err)
			}
			return
		}
		if !bytes.Equal(s.Marshal(), b) {
			t.Fatal("a parsed roster does not marshal back to its input")
		}
		if len(s.Certs) > MaxSignedCerts || len(s.Revocations) > MaxSignedRevocations {
			t.Fatal("over the limits")
		}
	})
}

// A friend who signs ever new devices and revocations cannot grow our
// roster past the limits of one document.
func TestMergeBounded(t *testing.T) {
	f, alice := mergeFixture(t)
	key := func(n int) (k [32]byte) {
		k[0], k[1], k[2] = 0xee, byte(n>>8), byte(n)
		return k
	}
	for round := range 6 {
		var certs []seed.DeviceCert
		var revs []seed.Revocation
		for i := range MaxSignedCerts {
			n := round*MaxSignedCerts + i
			c, err := alice.IssueDeviceCert(seed.DeviceCert{Device: key(n), Index: uint32(n), Archive: id(1), Issued: t0})
			if err != nil {
				t.Fatal(err)
			}
			certs = append(certs, c)
			if round >= 3 {
				r, err := alice.Revoke(seed.Revocation{Device: key(n), Index: uint32(n), Revoked: t0})
				if err != nil {
					t.Fatal(err)
				}
				revs = append(revs, r)
			}
		}
		if err := f.apply(t, Change{Op: OpMerge, Roster: signedOf(t, alice, certs, revs)}); err != nil {
			t.Fatal(err)
		}
	}
	nrev := 0
	for _, r := range f.reload(t).revoked {
		if r.User.Equal(alice.Public()) {
			nrev++
		}
	}
	if n := len(f.r.DevicesOf(alice.Public())); n > MaxSignedCerts || nrev > MaxSignedRevocations {
		t.Fatalf("%d devices and %d revocations of one friend", n, nrev)
	}
	s, err := f.r.SignedOf(alice.Public(), nil)
	if err != nil || len(s.Certs) > MaxSignedCerts || len(s.Revocations) > MaxSignedRevocations {
		t.Fatalf("the friend's roster as held: %d certificates, %d revocations, %v", len(s.Certs), len(s.Revocations), err)
	}
}

// A friend who certified one of our device keys as theirs does not keep
// it once our own roster names it.
func TestOwnCertBeatsFriendClaim(t *testing.T) {
	f, alice := mergeFixture(t)
	claim := certOf(t, alice, 60, 0, "mine", t0)
	if err := f.apply(t, Change{Op: OpMerge, Roster: signedOf(t, alice, []seed.DeviceCert{claim}, nil)}); err != nil {
		t.Fatal(err)
	}
	if d, ok := f.r.Device(id(60)); !ok || !d.UserID.Equal(alice.Public()) {
		t.Fatalf("alice's claim: %+v %v", d, ok)
	}
	if err := f.apply(t, Change{Op: OpMerge, Roster: signedOf(t, f.user, []seed.DeviceCert{certOf(t, f.user, 60, 3, "ours", t0)}, nil)}); err != nil {
		t.Fatal(err)
	}
	d, ok := f.reload(t).Reachable(id(60))
	if !ok || d.Kind != KindOwn || !d.UserID.Equal(f.user.Public()) {
		t.Fatalf("our own device after our roster: %+v %v", d, ok)
	}
	// Nor can alice revoke it now, nor take it back.
	if err := f.apply(t, Change{Op: OpMerge, Roster: signedOf(t, alice, []seed.DeviceCert{claim}, []seed.Revocation{revOf(t, alice, 60, 0)})}); err != nil {
		t.Fatal(err)
	}
	if d, ok := f.reload(t).Reachable(id(60)); !ok || d.Kind != KindOwn {
		t.Fatalf("after alice's revocation of our device: %+v %v", d, ok)
	}
}
