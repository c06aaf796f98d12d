package agent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/memnet"
	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// rawRosterExchange sends frame f from a to b on a roster stream and
// returns b's answer.
func rawRosterExchange(t *testing.T, a, b *testAgent, f rosterFrame) rosterFrame {
	t.Helper()
	reply, err := tryRosterExchange(a, b, f)
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

func tryRosterExchange(a, b *testAgent, f rosterFrame) (rosterFrame, error) {
	return tryRosterExchangeLimited(a, b, f, true)
}

// tryRosterExchangeLimited is tryRosterExchange; fresh gives a a fresh
// rate limit at b first, so that exchanges made in the background do not
// count.
func tryRosterExchangeLimited(a, b *testAgent, f rosterFrame, fresh bool) (rosterFrame, error) {
	if fresh {
		b.rosters.mu.Lock()
		delete(b.rosters.limits, dev(a))
		b.rosters.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := a.tr.OpenStream(ctx, b.Addr(), dev(b).Ed25519(), protoRoster)
	if err != nil {
		return rosterFrame{}, err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	werr := writeJSON(s, f)
	var reply rosterFrame
	if err := readJSON(s, maxOwnRosterFrame, &reply); err != nil {
		return rosterFrame{}, errors.Join(werr, err)
	}
	return reply, nil
}

func userKeyOf(t *testing.T, p seed.Phrase) seed.UserKey {
	t.Helper()
	u, err := seed.DeriveUser(p.Seed(""))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Alice has devices 0 and 1; bob paired with alice-0 only. Once alice-1
// is in alice's roster, bob reaches it: it is in his book as alice's, a
// roster stream works, presence has it online. A revocation of alice-1
// made on alice-0 reaches bob, who then refuses alice-1's connections and
// heartbeats; alice-1 learns that it was revoked; an old roster replayed
// to bob does not bring it back; forged and foreign rosters are refused;
// and a device restored with the revoked index learns so on its first
// contact.
func TestFriendsFollowTheRoster(t *testing.T) {
	n := memnet.New(memnet.Options{Seed: 11})
	t.Cleanup(func() { n.Close() })
	phrase := newPhrase(t)
	a0, _ := labAgentOf(t, n, "203.0.113.10:7117", phrase, 0, "alice-0", "")
	a1, _ := labAgentOf(t, n, "203.0.113.11:7117", phrase, 1, "alice-1", "")
	bob, _ := labAgentOf(t, n, "203.0.113.20:7117", newPhrase(t), 0, "bob", "")
	alice := a0.dev.Cert.User
	pairAgents(t, bob, a0)
	if _, ok := bob.book.peerFor(dev(a1)); ok {
		t.Fatal("bob knows alice-1 before it exists")
	}
	pairAgents(t, a0, a1) // alice-1 joins alice's roster

	waitLong(t, "bob has alice-1 in his book, as alice's", 60*time.Second, func() bool {
		p, ok := bob.book.peerFor(dev(a1))
		return ok && p.Kind == roster.KindFriend && p.UserID.Equal(alice)
	})
	waitLong(t, "bob sees alice-1 online", 60*time.Second, func() bool { return bob.onlineSet()[dev(a1)] })
	p, _ := bob.book.peerFor(dev(a1))
	if err := bob.rosters.exchangeWith(context.Background(), p); err != nil {
		t.Fatalf("a roster stream from bob to alice-1: %v", err)
	}
	if fs := a1.friends(); len(fs) != 1 || !fs[0].UserID.Equal(bob.dev.Cert.User) {
		t.Fatalf("alice-1's friends: %+v", fs)
	}
	oldRoster, err := roster.NewSigned(alice, []seed.DeviceCert{a0.dev.Cert, a1.dev.Cert}, nil)
	if err != nil {
		t.Fatal(err)
	}

	// alice-1 is revoked on alice-0 with the user key.
	rev, err := userKeyOf(t, phrase).Revoke(seed.Revocation{Device: dev(a1), Index: 1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := controlAPI{a0.Agent}.DevicesRevoke(context.Background(), control.RevokeRequest{Revocation: rev.Marshal()})
	if err != nil || !res.Revoked || res.DeviceIndex != 1 {
		t.Fatalf("revoke: %+v %v", res, err)
	}
	waitLong(t, "bob learns the revocation", 60*time.Second, func() bool { return bob.book.revoked(dev(a1)) })
	if _, ok := bob.book.peerFor(dev(a1)); ok {
		t.Fatal("bob still reaches the revoked device")
	}
	if err := bob.authorize(dev(a1).Ed25519(), a1.Addr(), transport.Inbound); err == nil {
		t.Fatal("bob still authorizes the revoked device")
	}
	if _, ok := (presenceBook{bob.Agent}).Lookup(dev(a1)); ok {
		t.Fatal("bob's presence still takes the revoked device's heartbeats")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if s, err := a1.tr.OpenStream(ctx, bob.Addr(), dev(bob).Ed25519(), protoRoster); err == nil {
		// The handshake may complete on our side before bob's refusal
		// arrives: then the stream dies at its first exchange.
		writeJSON(s, rosterFrame{})
		s.SetDeadline(time.Now().Add(10 * time.Second))
		var f rosterFrame
		if readJSON(s, maxOwnRosterFrame, &f) == nil {
			t.Fatal("bob answered the revoked device")
		}
		s.Close()
	}
	waitLong(t, "alice-1 learns that it was revoked", 60*time.Second, func() bool { return a1.status().Revoked })
	if msg := a1.status().RevokedMessage; !strings.Contains(msg, "index 1") || !strings.Contains(msg, "kith restore --device 2 --force") {
		t.Fatalf("alice-1's message: %q", msg)
	}

	// The old roster, without the revocation, replayed to bob from alice-0.
	reply := rawRosterExchange(t, a0, bob, rosterFrame{Roster: oldRoster.Marshal()})
	if reply.Code != "" {
		t.Fatalf("the old roster was refused outright (%s: %s); it should merge and change nothing", reply.Code, reply.Error)
	}
	if !bob.book.revoked(dev(a1)) {
		t.Fatal("an old roster brought the revoked device back")
	}
	// Forged, foreign, oversized.
	forged := oldRoster.Marshal()
	forged[len(forged)-3] ^= 1
	carol := userKeyOf(t, newPhrase(t))
	carolCert, err := carol.IssueDeviceCert(seed.DeviceCert{Device: dev(a1), Archive: a1.dev.Cert.Archive, Index: 7, Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := roster.NewSigned(carol.Public(), []seed.DeviceCert{carolCert}, nil)
	for name, c := range map[string]struct {
		f    rosterFrame
		code string
	}{
		"forged":  {rosterFrame{Roster: forged}, rosterBad},
		"foreign": {rosterFrame{Roster: foreign.Marshal()}, rosterForeign},
		"bob's":   {rosterFrame{Roster: mustSigned(t, bob)}, rosterForeign},
	} {
		if r := rawRosterExchange(t, a0, bob, c.f); r.Code != c.code {
			t.Errorf("%s roster: answer %+v, want code %s", name, r, c.code)
		}
	}
	// An oversized frame is answered "bad", or the stream is reset while
	// it is still being written.
	if r, err := tryRosterExchange(a0, bob, rosterFrame{Roster: make([]byte, maxFriendRosterFrame)}); err == nil && r.Code != rosterBad {
		t.Errorf("an oversized frame: %+v", r)
	}
	if p, ok := bob.book.peerFor(dev(a0)); !ok || !p.UserID.Equal(alice) {
		t.Fatal("refused rosters changed alice-0")
	}

	// A device restored with the revoked index learns so on first contact.
	a1b, _ := labAgentOf(t, n, "203.0.113.12:7117", phrase, 1, "alice-1-again", "")
	if _, err := a1b.pair.show(0); err != nil {
		t.Fatal(err)
	}
	sa, err := a0.pair.show(0)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := a1b.pair.scan(context.Background(), sa.Code); err == nil && res.Status == "paired" {
		t.Fatal("a device with a revoked index paired")
	}
	waitLong(t, "the restored device learns that its index is revoked", 60*time.Second, func() bool { return a1b.status().Revoked })
}

func mustSigned(t *testing.T, a *testAgent) []byte {
	t.Helper()
	r := a.book.rosterNow()
	s, err := r.SignedOf(r.Self(), a.dev.Identity.Cert)
	if err != nil {
		t.Fatal(err)
	}
	return s.Marshal()
}

// A peer that floods roster exchanges is answered "rate" past its burst.
func TestRosterExchangesRateLimited(t *testing.T) {
	n := memnet.New(memnet.Options{})
	t.Cleanup(func() { n.Close() })
	a, _ := labAgentOf(t, n, "203.0.113.1:7117", newPhrase(t), 0, "a", "")
	b, _ := labAgentOf(t, n, "203.0.113.2:7117", newPhrase(t), 0, "b", "")
	pairAgents(t, a, b)
	f := rosterFrame{Roster: mustSigned(t, a)}
	limited := false
	for range rosterServeBurst + 3 {
		r, err := tryRosterExchangeLimited(a, b, f, false)
		if err != nil {
			t.Fatal(err)
		}
		if r.Code == rosterRate {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("no exchange was refused past the burst")
	}
}

// The frame decoder keeps its bounds and never panics; what it accepts
// is taken apart as take would, without panicking either.
func FuzzRosterFrame(f *testing.F) {
	f.Add([]byte(`{"roster":"a2l0aC1yb3N0ZXIB"}`))
	f.Add([]byte(`{"roster":"a2l0aC1yb3N0ZXIB","friends":[{"friend":{"user_id":"00"},"roster":""}],"addrs":[{"device":"zz","addr":"1.2.3.4:5"}]}`))
	f.Add([]byte(`{"code":"rate","error":"x"}`))
	f.Add([]byte(`{"code":"rate","roster":"AA=="}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeRosterFrame(b)
		if err != nil {
			return
		}
		if len(fr.Code) > 16 || len(fr.Error) > maxRosterError {
			t.Fatalf("over the bounds: code %q, error of %d bytes", fr.Code, len(fr.Error))
		}
		if (fr.Code == "" && fr.Error == "") == (len(fr.Roster) == 0) {
			t.Fatal("neither a roster nor a refusal, or both")
		}
		if s, err := roster.ParseSigned(fr.Roster); err == nil && len(s.Certs) > roster.MaxSignedCerts {
			t.Fatal("over the limit")
		}
		if c := clipString(fr.Error, maxRosterError); len(c) > maxRosterError {
			t.Fatal("clipString")
		}
	})
}
