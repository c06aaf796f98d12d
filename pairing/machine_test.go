package pairing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	xhkdf "golang.org/x/crypto/hkdf"
)

// wire sends a message through its JSON form, as the agent does.
func wire[T any](t testing.TB, m T) T {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// exchange delivers a Hello from one party to another, and the Reply back.
func exchange(t testing.TB, from, to *party, h Hello, now time.Time) (Reply, error) {
	t.Helper()
	r, err := to.m.HandleHello(wire(t, h), from.devPub(), now)
	if err != nil && (r.Status != StatusRefused || r.Reason != Reason(err)) {
		t.Errorf("HandleHello error %v came with reply %+v, want the refusal", err, r)
	}
	return r, from.m.HandleReply(wire(t, r), now)
}

var sasFormat = regexp.MustCompile(`^[0-9]{3} [0-9]{3}$`)

func checkPaired(t *testing.T, a, b *party) {
	t.Helper()
	if !a.m.Done() || !b.m.Done() {
		t.Fatalf("Done: a %v, b %v; want both", a.m.Done(), b.m.Done())
	}
	if sa, sb := a.m.SAS(), b.m.SAS(); sa != sb || !sasFormat.MatchString(sa) {
		t.Errorf("SAS %q and %q, want equal, formatted like 123 456", sa, sb)
	}
	if !a.m.Peer().Equal(b.inv) || !b.m.Peer().Equal(a.inv) {
		t.Error("Peer is not the other side's invite")
	}
	if p := a.m.PeerProfile(); p == nil || p.Name != "b" {
		t.Errorf("a has b's profile %v", p)
	}
	if p := b.m.PeerProfile(); p == nil || p.Name != "a" {
		t.Errorf("b has a's profile %v", p)
	}
}

// helloWith fills in the sender's profile, as the agent does.
func helloWith(h Hello, name string) Hello {
	h.Profile = &Profile{Name: name, Window: bytes.Repeat([]byte{1}, 32), Addrs: []string{"192.0.2.1:9"}}
	return h
}

// replyWith fills in the profile of a paired reply, as the agent does.
func replyWith(r Reply, name string) Reply {
	if r.Status == StatusPaired {
		r.Profile = &Profile{Name: name}
	}
	return r
}

func TestPairAFirst(t *testing.T) {
	a, b := newParty(t, 1, 2, 10*time.Minute), newParty(t, 3, 4, 10*time.Minute)
	now := t0.Add(time.Minute)

	// Ana scans Ben's code; Ben has not scanned hers yet.
	hA, err := a.scan(t, b, now)
	if err != nil {
		t.Fatal(err)
	}
	if a.m.SAS() == "" {
		t.Error("a has no SAS after scanning")
	}
	rB, err := b.m.HandleHello(wire(t, helloWith(hA, "a")), a.devPub(), now)
	if err != nil || rB.Status != StatusWaiting || rB.Proof != nil {
		t.Fatalf("b answers %+v, %v; want waiting without proof", rB, err)
	}
	if b.m.Done() || b.m.SAS() != "" || b.m.PeerProfile() != nil {
		t.Fatal("b is done, or shows a SAS or profile, before its user scanned")
	}
	if err := a.m.HandleReply(wire(t, rB), now); err != nil || a.m.Done() {
		t.Fatalf("a after waiting: %v, done %v", err, a.m.Done())
	}

	// Ben scans Ana's code: his side is done at once, and tells hers.
	now = now.Add(30 * time.Second)
	hB, err := b.scan(t, a, now)
	if err != nil {
		t.Fatal(err)
	}
	if !b.m.Done() {
		t.Fatal("b is not done after scanning the code whose proof it holds")
	}
	rA, err := a.m.HandleHello(wire(t, helloWith(hB, "b")), b.devPub(), now)
	if err != nil || rA.Status != StatusPaired {
		t.Fatalf("a answers %+v, %v; want paired", rA, err)
	}
	if err := b.m.HandleReply(wire(t, replyWith(rA, "a")), now); err != nil {
		t.Fatal(err)
	}
	checkPaired(t, a, b)
}

func TestPairBFirst(t *testing.T) {
	a, b := newParty(t, 1, 2, 10*time.Minute), newParty(t, 3, 4, 10*time.Minute)
	now := t0.Add(time.Minute)
	hB, err := b.scan(t, a, now)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := exchange(t, b, a, helloWith(hB, "b"), now); err != nil || r.Status != StatusWaiting {
		t.Fatalf("a answers %+v, %v; want waiting", r, err)
	}
	hA, err := a.scan(t, b, now)
	if err != nil {
		t.Fatal(err)
	}
	if !a.m.Done() || b.m.Done() {
		t.Fatalf("after a scans: a done %v (want true), b done %v (want false)", a.m.Done(), b.m.Done())
	}
	r, err := b.m.HandleHello(wire(t, helloWith(hA, "a")), a.devPub(), now)
	if err != nil || r.Status != StatusPaired {
		t.Fatalf("b answers %+v, %v; want paired", r, err)
	}
	if err := a.m.HandleReply(wire(t, replyWith(r, "b")), now); err != nil {
		t.Fatal(err)
	}
	checkPaired(t, a, b)
}

func TestPairSimultaneous(t *testing.T) {
	a, b := newParty(t, 1, 2, 10*time.Minute), newParty(t, 3, 4, 10*time.Minute)
	now := t0.Add(time.Minute)
	hA, errA := a.scan(t, b, now)
	hB, errB := b.scan(t, a, now)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	// The Hellos cross; each side answers the other's.
	rB, errB := b.m.HandleHello(wire(t, helloWith(hA, "a")), a.devPub(), now)
	rA, errA := a.m.HandleHello(wire(t, helloWith(hB, "b")), b.devPub(), now)
	if errA != nil || errB != nil || rA.Status != StatusPaired || rB.Status != StatusPaired {
		t.Fatalf("replies %+v %v, %+v %v; want both paired", rA, errA, rB, errB)
	}
	if err := a.m.HandleReply(wire(t, replyWith(rB, "b")), now); err != nil {
		t.Fatal(err)
	}
	if err := b.m.HandleReply(wire(t, replyWith(rA, "a")), now); err != nil {
		t.Fatal(err)
	}
	checkPaired(t, a, b)
}

// TestPairConcurrent runs both users' scans and both connections at once,
// for the race detector, and checks the outcome is the same.
func TestPairConcurrent(t *testing.T) {
	for range 20 {
		a, b := newParty(t, 1, 2, 10*time.Minute), newParty(t, 3, 4, 10*time.Minute)
		now := t0.Add(time.Minute)
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for _, p := range [][2]*party{{a, b}, {b, a}} {
			self, other := p[0], p[1]
			wg.Go(func() {
				h, err := self.scan(t, other, now)
				if err != nil {
					errs <- err
					return
				}
				r, err := other.m.HandleHello(helloWith(h, fmt.Sprintf("%x", self.inv.Device[:1])), self.devPub(), now)
				if err != nil {
					errs <- err
					return
				}
				errs <- self.m.HandleReply(r, now)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		// Whichever Hello came first was answered "waiting"; the other
		// completed one side, and scanning completed the other.
		if !a.m.Done() || !b.m.Done() || a.m.SAS() != b.m.SAS() {
			t.Fatalf("done %v %v, SAS %q %q", a.m.Done(), b.m.Done(), a.m.SAS(), b.m.SAS())
		}
	}
}

// TestSwappedCode: Mallory put her code where Ben's should be. Ana scans
// Mallory's; Ben scans Ana's.
func TestSwappedCode(t *testing.T) {
	a, b, m := newParty(t, 1, 2, 10*time.Minute), newParty(t, 3, 4, 10*time.Minute), newParty(t, 5, 6, 10*time.Minute)
	now := t0.Add(time.Minute)
	hA, err := a.scan(t, m, now) // Ana believes this is Ben's code
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.scan(t, a, now); err != nil {
		t.Fatal(err)
	}
	// Ana's Hello, meant for Mallory, does not prove anything to Ben.
	r, err := b.m.HandleHello(hA, a.devPub(), now)
	if !errors.Is(err, ErrForeign) || r.Status != StatusRefused || r.Reason != "foreign" {
		t.Errorf("b accepted a Hello proving Mallory's secret: %+v, %v", r, err)
	}
	// Mallory completes her side with Ana...
	hM, err := m.scan(t, a, now)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := exchange(t, m, a, helloWith(hM, "m"), now); err != nil || r.Status != StatusPaired {
		t.Fatalf("Mallory and Ana: %+v, %v", r, err)
	}
	// ...but Ana and Ben, comparing their screens, see different strings.
	if a.m.SAS() == b.m.SAS() {
		t.Errorf("the swap went unnoticed: both show %s", a.m.SAS())
	}
	if b.m.Done() {
		t.Error("b is done with nobody")
	}
}

// TestBystander: someone photographed Ben's code and races Ana to it.
func TestBystander(t *testing.T) {
	a, b, c := newParty(t, 1, 2, 10*time.Minute), newParty(t, 3, 4, 10*time.Minute), newParty(t, 5, 6, 10*time.Minute)
	now := t0.Add(time.Minute)
	hC, err := c.scan(t, b, now)
	if err != nil {
		t.Fatal(err)
	}
	// Before Ben scans, Carl's valid proof is kept, as is Ana's.
	if r, err := exchange(t, c, b, helloWith(hC, "c"), now); err != nil || r.Status != StatusWaiting {
		t.Fatalf("%+v, %v", r, err)
	}
	hA, _ := a.scan(t, b, now)
	if r, err := exchange(t, a, b, helloWith(hA, "a"), now); err != nil || r.Status != StatusWaiting {
		t.Fatalf("%+v, %v", r, err)
	}
	// Ben scans Ana's code: Ana's proof completes his side, Carl's does not.
	if _, err := b.scan(t, a, now); err != nil || !b.m.Done() {
		t.Fatalf("b after scanning a: %v, done %v", err, b.m.Done())
	}
	if p := b.m.PeerProfile(); p == nil || p.Name != "a" {
		t.Errorf("b took the profile %v, want a's", p)
	}
	// After the scan, a bystander is refused outright.
	b2 := newParty(t, 3, 4, 10*time.Minute)
	hC2, _ := c.m.Scanned(b2.inv, now) // c's machine already scanned b: reused
	if hC2.Proof != nil {
		t.Error("c's machine made a second Hello for another invite")
	}
	c2 := newParty(t, 5, 6, 10*time.Minute)
	if _, err := b2.scan(t, a, now); err != nil {
		t.Fatal(err)
	}
	hC3, _ := c2.scan(t, b2, now)
	if _, err := exchange(t, c2, b2, hC3, now); !errors.Is(err, ErrForeign) || !errors.Is(err, ErrRefused) {
		t.Errorf("bystander after the scan: %v, want a foreign refusal", err)
	}
}

func TestReused(t *testing.T) {
	a, b, c := newParty(t, 1, 2, 10*time.Minute), newParty(t, 3, 4, 10*time.Minute), newParty(t, 5, 6, 10*time.Minute)
	now := t0.Add(time.Minute)
	hA, _ := a.scan(t, b, now)
	hB, _ := b.scan(t, a, now)
	if _, err := exchange(t, a, b, hA, now); err != nil {
		t.Fatal(err)
	}
	if _, err := exchange(t, b, a, hB, now); err != nil {
		t.Fatal(err)
	}
	// Carl got hold of Ben's used code.
	hC, err := c.scan(t, b, now)
	if err != nil {
		t.Fatal(err)
	}
	r, err := exchange(t, c, b, hC, now)
	if !errors.Is(err, ErrReused) || !errors.Is(err, ErrRefused) || Reason(err) != "reused" || r.Reason != "reused" {
		t.Fatalf("Carl with a used code: %+v, %v (reason %q), want reused", r, err, Reason(err))
	}
	if want := "pairing: the other device refused the pairing: its invite was already used: ask for a fresh code"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	// Ana's Hello again, after the pairing (her agent retrying, or her
	// Hello crossing Ben's): the same answer, not a refusal.
	r2, err := b.m.HandleHello(hA, a.devPub(), now)
	if err != nil || r2.Status != StatusPaired || a.m.HandleReply(r2, now) != nil {
		t.Errorf("Ana's Hello again after Done: %+v, %v; want paired again", r2, err)
	}
	// The same Hello through another device is still refused.
	if _, err := b.m.HandleHello(hA, c.devPub(), now); !errors.Is(err, ErrReused) {
		t.Errorf("Ana's Hello from Carl's device after Done: %v, want ErrReused", err)
	}
	// Ben scanning the same code again after Done gets the same Hello, so
	// that a scan whose answer was lost can be retried; another code is
	// refused.
	if h, err := b.scan(t, a, now); err != nil || h.Invite != hB.Invite || !bytes.Equal(h.Proof, hB.Proof) {
		t.Errorf("scanning the same code after Done: %v, or another Hello", err)
	}
	if _, err := b.scan(t, c, now); !errors.Is(err, ErrReused) {
		t.Errorf("scanning another code after Done: %v, want ErrReused", err)
	}
	// Before Done, scanning the same code again returns the same Hello.
	d, e := newParty(t, 7, 8, time.Hour), newParty(t, 9, 10, time.Hour)
	h1, err1 := d.scan(t, e, now)
	h2, err2 := d.scan(t, e, now)
	if err1 != nil || err2 != nil || h1.Invite != h2.Invite || !bytes.Equal(h1.Proof, h2.Proof) {
		t.Errorf("rescanning: %v %v, Hellos differ", err1, err2)
	}
	if _, err := d.scan(t, c, now); !errors.Is(err, ErrReused) {
		t.Errorf("scanning a second code: %v, want ErrReused", err)
	}
}

func TestWrongProof(t *testing.T) {
	now := t0.Add(time.Minute)
	for name, spoil := range map[string]func(*Hello){
		"flipped bit": func(h *Hello) { h.Proof[7] ^= 4 },
		"no proof":    func(h *Hello) { h.Proof = nil },
		"short proof": func(h *Hello) { h.Proof = h.Proof[:16] },
		"long proof":  func(h *Hello) { h.Proof = append(h.Proof, 0) },
	} {
		for _, scanned := range []bool{false, true} {
			a, b := newParty(t, 1, 2, 10*time.Minute), newParty(t, 3, 4, 10*time.Minute)
			if scanned {
				_, _ = b.scan(t, a, now)
			}
			h, _ := a.scan(t, b, now)
			h.Proof = bytes.Clone(h.Proof)
			spoil(&h)
			r, err := b.m.HandleHello(h, a.devPub(), now)
			if !errors.Is(err, ErrForeign) || r.Reason != "foreign" {
				t.Errorf("%s (b scanned: %v): %+v, %v; want foreign", name, scanned, r, err)
			}
			if b.m.Done() {
				t.Errorf("%s: b is done", name)
			}
		}
	}

	// A paired Reply with a wrong proof.
	a, b := newParty(t, 1, 2, 10*time.Minute), newParty(t, 3, 4, 10*time.Minute)
	h, _ := a.scan(t, b, now)
	_, _ = b.scan(t, a, now)
	r, err := b.m.HandleHello(h, a.devPub(), now)
	if err != nil {
		t.Fatal(err)
	}
	r.Proof = bytes.Clone(r.Proof)
	r.Proof[0] ^= 1
	if err := a.m.HandleReply(r, now); !errors.Is(err, ErrForeign) || a.m.Done() {
		t.Errorf("paired reply with a wrong proof: %v, done %v", err, a.m.Done())
	}
	r.Proof = nil
	if err := a.m.HandleReply(r, now); !errors.Is(err, ErrForeign) {
		t.Errorf("paired reply without proof: %v", err)
	}
}

func TestWrongPeer(t *testing.T) {
	a, b, c := newParty(t, 1, 2, 10*time.Minute), newParty(t, 3, 4, 10*time.Minute), newParty(t, 5, 6, 10*time.Minute)
	now := t0.Add(time.Minute)
	h, _ := a.scan(t, b, now)
	for name, key := range map[string]ed25519.PublicKey{
		"other key": c.devPub(), "no key": nil, "short key": a.devPub()[:31], "b's own key": b.devPub(),
	} {
		if _, err := b.m.HandleHello(h, key, now); !errors.Is(err, ErrForeign) {
			t.Errorf("%s: %v, want ErrForeign", name, err)
		}
	}
	// Scanning one's own code.
	if _, err := a.m.Scanned(a.inv, now); err == nil {
		t.Error("a scanned its own invite")
	}
	a2 := newParty(t, 1, 2, 10*time.Minute) // another invite of the same device
	if _, err := a2.scan(t, a, now); !errors.Is(err, ErrForeign) {
		t.Errorf("scanning this device's own invite: %v, want ErrForeign", err)
	}
	// A Hello carrying the receiver's own invite.
	bad := Hello{Invite: b.inv.Encode(), Proof: h.Proof}
	if _, err := b.m.HandleHello(bad, b.devPub(), now); !errors.Is(err, ErrForeign) {
		t.Errorf("Hello with b's own invite: %v", err)
	}
	// A Hello whose invite is damaged or not an invite.
	bad = Hello{Invite: strings.Replace(h.Invite, "A", "B", 1), Proof: h.Proof}
	if _, err := b.m.HandleHello(bad, a.devPub(), now); Reason(err) != "tampered" && Reason(err) != "malformed" {
		t.Errorf("Hello with a damaged invite: %v", err)
	}
	if r, err := b.m.HandleHello(Hello{Invite: "hi"}, a.devPub(), now); !errors.Is(err, ErrMalformed) || r.Reason != "malformed" {
		t.Errorf("Hello with junk: %+v, %v", r, err)
	}
	// A malformed profile, from a peer with a valid proof.
	bad = Hello{Invite: h.Invite, Proof: h.Proof, Profile: &Profile{Window: []byte{1, 2, 3}}}
	if _, err := b.m.HandleHello(bad, a.devPub(), now); !errors.Is(err, ErrMalformed) {
		t.Errorf("Hello with a 3-byte window secret: %v", err)
	}
}

func TestExpired(t *testing.T) {
	a, b := newParty(t, 1, 2, 5*time.Minute), newParty(t, 3, 4, 10*time.Minute)
	now := t0.Add(time.Minute)
	hB, err := b.scan(t, a, now)
	if err != nil {
		t.Fatal(err)
	}
	// Ben's Hello reaches Ana after her own invite expired.
	late := t0.Add(5 * time.Minute)
	r, err := a.m.HandleHello(hB, b.devPub(), late)
	if !errors.Is(err, ErrExpired) || r.Reason != "expired" {
		t.Fatalf("Hello for an expired invite: %+v, %v", r, err)
	}
	if !strings.Contains(err.Error(), "this device's invite expired at 11:11 UTC") {
		t.Errorf("message %q does not say whose invite expired when", err)
	}
	if err := b.m.HandleReply(r, late); !errors.Is(err, ErrExpired) || !errors.Is(err, ErrRefused) {
		t.Errorf("b told of the expiry: %v", err)
	}
	// Ana scanning after her own invite expired.
	if _, err := a.scan(t, b, late); !errors.Is(err, ErrExpired) {
		t.Errorf("scanning with an expired own invite: %v", err)
	}
	// Scanning an expired code.
	c := newParty(t, 5, 6, time.Hour)
	if _, err := c.m.Scanned(a.inv, late); !errors.Is(err, ErrExpired) {
		t.Errorf("scanning an expired code: %v", err)
	}
	// A Hello carrying an expired invite of the sender.
	d := newParty(t, 7, 8, time.Hour)
	hA, err := a.m.Scanned(d.inv, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.m.HandleHello(hA, a.devPub(), late); !errors.Is(err, ErrExpired) {
		t.Errorf("Hello with the sender's expired invite: %v", err)
	}
}

func TestHandleReplyErrors(t *testing.T) {
	a, b := newParty(t, 1, 2, 10*time.Minute), newParty(t, 3, 4, 10*time.Minute)
	now := t0.Add(time.Minute)
	if err := a.m.HandleReply(Reply{Status: StatusPaired}, now); err == nil || Reason(err) != "" {
		t.Errorf("reply before scanning: %v", err)
	}
	_, _ = a.scan(t, b, now)
	if err := a.m.HandleReply(Reply{Status: "maybe"}, now); err == nil || Reason(err) != "" {
		t.Errorf("unknown status: %v", err)
	}
	for _, reason := range []string{"malformed", "tampered", "expired", "reused", "foreign", "blocked", "", "zzz"} {
		err := a.m.HandleReply(Reply{Status: StatusRefused, Reason: reason}, now)
		if !errors.Is(err, ErrRefused) {
			t.Errorf("refused %q: %v", reason, err)
		}
		want := reason
		if reasonErr(reason) == nil {
			want = "refused"
		}
		if Reason(err) != want {
			t.Errorf("refused %q: Reason %q, want %q", reason, Reason(err), want)
		}
	}
}

func TestNewMachineWrongKey(t *testing.T) {
	a := newParty(t, 1, 2, time.Hour)
	b := newParty(t, 3, 4, time.Hour)
	forged, err := newInvite(InviteVersion1, pub(key(1)), key(2), typicalAddrs, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	forged.Addrs = typicalAddrs[:1] // version 1 is signed: this breaks the signature
	for name, m := range map[string]*Machine{
		"other key":   NewMachine(a.inv, key(9)),
		"short key":   NewMachine(a.inv, key(2)[:10]),
		"bad invite":  NewMachine(Invite{Device: a.inv.Device}, key(2)),
		"not signed":  NewMachine(forged, key(2)),
		"zero invite": NewMachine(Invite{}, key(2)),
	} {
		if _, err := m.Scanned(b.inv, t0); err == nil {
			t.Errorf("%s: Scanned succeeded", name)
		}
		if _, err := m.HandleHello(Hello{}, b.devPub(), t0); err == nil {
			t.Errorf("%s: HandleHello succeeded", name)
		}
		if err := m.HandleReply(Reply{}, t0); err == nil {
			t.Errorf("%s: HandleReply succeeded", name)
		}
	}
}

// TestHandshakeConstruction recomputes the transcript, a proof and the SAS
// from the package comment's definitions, with x/crypto's HKDF rather than
// the standard library's.
func TestHandshakeConstruction(t *testing.T) {
	a, b := newParty(t, 1, 2, time.Hour), newParty(t, 3, 4, time.Hour)
	now := t0.Add(time.Minute)
	h, err := a.scan(t, b, now)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := a.inv, b.inv
	if bytes.Compare(lo.Device[:], hi.Device[:]) > 0 {
		lo, hi = hi, lo
	}
	T := sha256.Sum256(append(append([]byte("kith/v1/pair-transcript\x00"), lo.Bytes()...), hi.Bytes()...))
	mac := hmac.New(sha256.New, b.inv.Secret[:])
	mac.Write([]byte("kith/v1/pair-proof\x00"))
	mac.Write(T[:])
	mac.Write(a.inv.Device[:])
	if !bytes.Equal(h.Proof, mac.Sum(nil)) {
		t.Error("the Hello's proof is not HMAC-SHA256(b's secret, label || T || a's device)")
	}
	var k [8]byte
	if _, err := io.ReadFull(xhkdf.New(sha256.New, T[:], nil, []byte("kith/v1/sas")), k[:]); err != nil {
		t.Fatal(err)
	}
	n := binary.BigEndian.Uint64(k[:]) % 1e6
	if want := fmt.Sprintf("%03d %03d", n/1000, n%1000); a.m.SAS() != want {
		t.Errorf("SAS %q, want %q", a.m.SAS(), want)
	}
}

func TestSubtleLess(t *testing.T) {
	var x, y [32]byte
	check := func() {
		t.Helper()
		if got, want := subtleLess(x, y), bytes.Compare(x[:], y[:]) < 0; got != want {
			t.Fatalf("subtleLess(%x, %x) = %v, want %v", x, y, got, want)
		}
	}
	check() // equal
	for range 2000 {
		_, _ = rand.Read(x[:])
		y = x
		k := int(x[0]) % 32
		_, _ = rand.Read(y[k:]) // share a prefix of k bytes
		check()
		x, y = y, x
		check()
	}
	x, y = [32]byte{}, [32]byte{}
	x[31], y[31] = 0xff, 0xfe
	check()
	x[0] = 1
	check()
}

func TestProfileValidate(t *testing.T) {
	var nilProfile *Profile
	for name, p := range map[string]*Profile{
		"nil":   nilProfile,
		"empty": {},
		"full":  {Name: "Ana’s laptop", Cert: make([]byte, 300), Window: make([]byte, 32), Addrs: []string{"192.0.2.1:9", "[2001:db8::1]:9"}},
	} {
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, p := range map[string]*Profile{
		"long name":    {Name: strings.Repeat("x", 300)},
		"bad utf8":     {Name: "\xff"},
		"huge cert":    {Cert: make([]byte, 10000)},
		"short window": {Window: make([]byte, 31)},
		"many addrs":   {Addrs: make([]string, 17)},
		"bad addr":     {Addrs: []string{"example.com:1"}},
		"long addr":    {Addrs: []string{strings.Repeat("1", 100)}},
	} {
		if err := p.Validate(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// TestPairHellosCrossLate: both users scan at about the same time; Ana's
// Hello and its Reply complete both sides before Ben's Hello, already on
// its way, arrives.
func TestPairHellosCrossLate(t *testing.T) {
	a, b := newParty(t, 1, 2, 10*time.Minute), newParty(t, 3, 4, 10*time.Minute)
	now := t0.Add(time.Minute)
	hA, _ := a.scan(t, b, now)
	hB, _ := b.scan(t, a, now)
	r, err := b.m.HandleHello(helloWith(hA, "a"), a.devPub(), now)
	if err != nil || r.Status != StatusPaired {
		t.Fatalf("%+v, %v", r, err)
	}
	if err := a.m.HandleReply(replyWith(r, "b"), now); err != nil {
		t.Fatal(err)
	}
	r, err = exchange(t, b, a, helloWith(hB, "b"), now)
	if err != nil || r.Status != StatusPaired {
		t.Fatalf("the late Hello: %+v, %v; want paired", r, err)
	}
	if !a.m.Done() || !b.m.Done() || a.m.SAS() != b.m.SAS() {
		t.Fatalf("done %v %v, SAS %q %q", a.m.Done(), b.m.Done(), a.m.SAS(), b.m.SAS())
	}
	if p := a.m.PeerProfile(); p == nil || p.Name != "b" {
		t.Errorf("a has b's profile %v", p)
	}
}

// TestFourBystanders: four people photographed Ben's code and sent valid
// Hellos before Ana did. Ana is told to wait, not that the code was reused,
// and the pairing completes when Ben scans her code.
func TestFourBystanders(t *testing.T) {
	a, b := newParty(t, 1, 2, 10*time.Minute), newParty(t, 3, 4, 10*time.Minute)
	now := t0.Add(time.Minute)
	for i := range maxPending {
		c := newParty(t, byte(10+2*i), byte(11+2*i), 10*time.Minute)
		h, err := c.scan(t, b, now)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := exchange(t, c, b, helloWith(h, "c"), now); err != nil || r.Status != StatusWaiting {
			t.Fatalf("bystander %d: %+v, %v", i, r, err)
		}
	}
	hA, err := a.scan(t, b, now)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := exchange(t, a, b, helloWith(hA, "a"), now); err != nil || r.Status != StatusWaiting {
		t.Fatalf("Ana after four bystanders: %+v, %v; want waiting", r, err)
	}
	// Ben scans Ana's code and his Hello completes both sides.
	hB, err := b.scan(t, a, now)
	if err != nil {
		t.Fatal(err)
	}
	r, err := a.m.HandleHello(wire(t, helloWith(hB, "b")), b.devPub(), now)
	if err != nil || r.Status != StatusPaired {
		t.Fatalf("Ben's Hello to Ana: %+v, %v", r, err)
	}
	if err := b.m.HandleReply(wire(t, replyWith(r, "a")), now); err != nil {
		t.Fatal(err)
	}
	checkPaired(t, a, b)
}
