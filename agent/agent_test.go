package agent

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/device"
	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// testAgent is an in-process agent on a real UDP port with its own home.
type testAgent struct {
	*Agent
	home string
	stop func()
}

func newDevice(t testing.TB, phrase seed.Phrase, index uint32, name string) (string, *store.Store, *device.Device) {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := device.Provision(dir, st, device.Request{Phrase: phrase, Index: index, Name: name}); err != nil {
		t.Fatal(err)
	}
	dev, err := device.Load(dir, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	return dir, st, dev
}

// startAgent starts an agent on a real UDP port of host; setup, if any,
// runs before it serves (to register test protocols, say).
func startAgent(t testing.TB, phrase seed.Phrase, index uint32, name, host string, setup ...func(*Agent)) *testAgent {
	t.Helper()
	return startWith(t, Config{Listen: host + ":0", Heartbeat: 100 * time.Millisecond}, phrase, index, name, setup...)
}

// startWith makes a device and starts an agent for it with cfg, whose Home
// it fills in; setup, if any, runs before the agent serves.
func startWith(t testing.TB, cfg Config, phrase seed.Phrase, index uint32, name string, setup ...func(*Agent)) *testAgent {
	t.Helper()
	dir, st, dev := newDevice(t, phrase, index, name)
	cfg.Home = dir
	a, err := New(cfg, dev, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range setup {
		f(a)
	}
	return serve(t, a, dir)
}

// restart starts a new agent on the stopped agent old's home, store and
// keys, with cfg, whose Home it fills in.
func restart(t testing.TB, old *testAgent, cfg Config) *testAgent {
	t.Helper()
	cfg.Home = old.home
	a, err := New(cfg, old.dev, old.st)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, a, old.home)
}

// serve runs a until the test ends, or until its stop, and fails the test
// if Run fails.
func serve(t testing.TB, a *Agent, home string) *testAgent {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	ta := &testAgent{Agent: a, home: home}
	var once bool
	ta.stop = func() {
		if once {
			return
		}
		once = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(ta.stop)
	return ta
}

// scanFirst has a and b show their codes and a scan b's: the first half
// of a pairing. It returns a's result and a's code, for b to scan.
func scanFirst(t testing.TB, a, b *testAgent) (control.ScanResult, string) {
	t.Helper()
	sa, err := a.pair.show(0)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.pair.show(0)
	if err != nil {
		t.Fatal(err)
	}
	first, err := a.pair.scan(context.Background(), sb.Code)
	if err != nil {
		t.Fatalf("first scan: %v", err)
	}
	return first, sa.Code
}

func newPhrase(t testing.TB) seed.Phrase {
	t.Helper()
	p, err := seed.Generate(12)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pairAgents runs the mutual scan between a and b and returns both results.
func pairAgents(t testing.TB, a, b *testAgent) (control.ScanResult, control.ScanResult) {
	t.Helper()
	first, aCode := scanFirst(t, a, b)
	second, err := b.pair.scan(context.Background(), aCode)
	if err != nil {
		t.Fatalf("second scan: %v", err)
	}
	return first, second
}

func TestPairFriendsAndBlock(t *testing.T) {
	a := startAgent(t, newPhrase(t), 0, "alice", "127.0.0.2")
	b := startAgent(t, newPhrase(t), 0, "bob", "127.0.0.3")
	first, second := pairAgents(t, a, b)
	if first.Status != "waiting" || second.Status != "paired" || first.SAS != second.SAS || second.Kind != roster.KindFriend {
		t.Fatalf("scans: %+v, %+v", first, second)
	}
	fa, fb := a.friends(), b.friends()
	if len(fa) != 1 || fa[0].UserID != b.dev.Identity.UserID || fa[0].Name != "bob" || len(fa[0].Devices) != 1 {
		t.Fatalf("alice's friends: %+v", fa)
	}
	if len(fb) != 1 || fb[0].UserID != a.dev.Identity.UserID || fb[0].SAS != first.SAS {
		t.Fatalf("bob's friends: %+v", fb)
	}
	// Alice got bob's window secret at pairing.
	if w := a.book.window(b.dev.Cert.User); len(w) != 32 || string(w) != string(b.dev.Window[:]) {
		t.Fatal("alice did not keep bob's presence window secret")
	}
	// Presence: each sees the other online within a few heartbeats.
	waitFor(t, "heartbeats", func() bool { return a.onlineSet()[b.dev.Cert.Device] && b.onlineSet()[a.dev.Cert.Device] })

	// Blocking bob: his device is no longer reachable, and refuses at once.
	if _, err := a.friendAction("block", b.dev.Identity.UserID.ID()); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.book.peerFor(b.dev.Device.Public()); ok {
		t.Fatal("a blocked user's device is still known")
	}
	if err := a.authorize(b.dev.Device.Public().Ed25519(), b.Addr(), 0); err == nil {
		t.Fatal("a blocked user's device is still authorized")
	}
	if !a.book.blockedAddr(b.Addr()) {
		t.Fatal("packets from the blocked device's address are not dropped")
	}
	st, err := a.friendAction("unblock", b.dev.Identity.UserID.ID())
	if err != nil || st.Status != string(roster.StatusFriend) {
		t.Fatalf("unblock: %+v %v", st, err)
	}
	if a.book.blockedAddr(b.Addr()) {
		t.Fatal("packets from an unblocked device's address are still dropped")
	}
	st, err = a.friendAction("remove", b.dev.Identity.UserID.ID())
	if err != nil || len(a.friends()) != 0 || len(a.book.reachable()) != 0 {
		t.Fatalf("remove: %+v %v, friends %+v", st, err, a.friends())
	}
	var ce *control.Error
	if _, err := a.friendAction("remove", b.dev.Identity.UserID.ID()); !errors.As(err, &ce) || ce.Kind != control.KindNotFound {
		t.Fatalf("removing a stranger: %v", err)
	}
	if _, err := a.friendAction("block", "nothex"); !control.BadInput(err) {
		t.Fatalf("a malformed user ID: %v", err)
	}
}

func TestPairOwnDevice(t *testing.T) {
	phrase := newPhrase(t)
	a := startAgent(t, phrase, 0, "laptop", "127.0.0.2")
	b := startAgent(t, phrase, 1, "phone", "127.0.0.3")
	first, second := pairAgents(t, a, b)
	if first.Kind != roster.KindOwn || second.Kind != roster.KindOwn || second.Status != "paired" {
		t.Fatalf("own device pairing: %+v, %+v", first, second)
	}
	// Own devices are peers, not friends.
	if len(a.friends()) != 0 {
		t.Fatalf("an own device was listed as a friend: %+v", a.friends())
	}
	ps := a.book.reachable()
	if len(ps) != 1 || ps[0].Kind != roster.KindOwn || !ps[0].DeviceID.Equal(b.dev.Cert.Device) {
		t.Fatalf("alice's peers: %+v", ps)
	}
	cert, err := seed.ParseDeviceCert(ps[0].Cert)
	if err != nil || cert.Index != 1 || !cert.User.Equal(a.dev.Identity.UserID) {
		t.Fatalf("the own device's certificate: %+v %v", cert, err)
	}
}

func TestPairingSurvivesRestart(t *testing.T) {
	phrase := newPhrase(t)
	a := startAgent(t, phrase, 0, "alice", "127.0.0.2")
	b := startAgent(t, newPhrase(t), 0, "bob", "127.0.0.3")
	pairAgents(t, a, b)
	a.stop()
	// Reopen alice's home as a new agent.
	a2 := restart(t, a, Config{Listen: a.Addr().String(), Heartbeat: 100 * time.Millisecond})
	fs := a2.friends()
	if len(fs) != 1 || fs[0].UserID != b.dev.Identity.UserID || fs[0].Devices[0].Addr != b.Addr().String() {
		t.Fatalf("after a restart alice's friends are %+v", fs)
	}
	waitFor(t, "reconnect", func() bool { return a2.onlineSet()[b.dev.Cert.Device] })
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkScanToPaired measures, on loopback, the time from the second
// scan (the one that completes a pairing) to both sides paired: a QUIC
// handshake with pinned keys, the Hello and Reply, certificate checks and
// the store writes on both sides. BenchmarkReferenceHandshakeOnly is the
// QUIC handshake alone between the same agents.
func BenchmarkScanToPaired(b *testing.B) {
	a := startAgent(b, newPhrase(b), 0, "alice", "127.0.0.2")
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		c := startAgent(b, newPhrase(b), 0, "carol", "127.0.0.3")
		sa, _ := a.pair.show(0)
		sc, _ := c.pair.show(0)
		if r, err := a.pair.scan(ctx, sc.Code); err != nil || r.Status != "waiting" {
			b.Fatal(r, err)
		}
		b.StartTimer()
		r, err := c.pair.scan(ctx, sa.Code)
		if err != nil || r.Status != "paired" {
			b.Fatal(r, err)
		}
		b.StopTimer()
		c.stop()
		b.StartTimer()
	}
}

func BenchmarkReferenceHandshakeOnly(b *testing.B) {
	// Every round is a new handshake: lift the cap on their rate.
	handshakeRate = -1
	b.Cleanup(func() { handshakeRate = 0 })
	a := startAgent(b, newPhrase(b), 0, "alice", "127.0.0.2")
	c := startAgent(b, newPhrase(b), 0, "carol", "127.0.0.3")
	pairAgents(b, a, c)
	key := a.dev.Identity.DeviceID.Ed25519()
	ctx := context.Background()
	for b.Loop() {
		// A stream of no protocol (a ignores it), then the connection is
		// closed so that every round makes a new handshake.
		s, err := c.tr.OpenStream(ctx, a.Addr(), key, 0)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
		c.tr.ClosePeer(key)
	}
}

func TestLastSeenIsPersisted(t *testing.T) {
	a := startAgent(t, newPhrase(t), 0, "alice", "127.0.0.2")
	b := startAgent(t, newPhrase(t), 0, "bob", "127.0.0.3")
	pairAgents(t, a, b)
	waitFor(t, "heartbeats", func() bool { return a.onlineSet()[b.dev.Cert.Device] })
	var heard time.Time
	for _, ps := range a.presence.Status() {
		heard = ps.LastSeen
	}
	a.stop()
	var p Local
	if ok, err := a.st.Get(store.BucketPeers, b.dev.Identity.DeviceID.ID(), &p); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if p.LastSeen.Before(heard) {
		t.Fatalf("stored last seen %v, but presence heard bob at %v", p.LastSeen, heard)
	}
}

func TestOwnDeviceRecognisedByCertificate(t *testing.T) {
	phrase := newPhrase(t)
	a := startAgent(t, phrase, 0, "laptop", "127.0.0.2")
	b := startAgent(t, phrase, 5, "tablet", "127.0.0.3")
	stranger := startAgent(t, newPhrase(t), 0, "stranger", "127.0.0.4")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := a.dev.Identity.DeviceID.Ed25519()

	// b's certificate chains to the same user key: accepted and remembered,
	// on both sides.
	s, err := b.tr.OpenStream(ctx, a.Addr(), key, 0) // no protocol: a ignores it
	if err != nil {
		t.Fatalf("an own device restored from the phrase was refused: %v", err)
	}
	s.Close()
	p, ok := a.book.peerFor(b.dev.Device.Public())
	if !ok || p.Kind != roster.KindOwn || p.Name != "tablet" || p.Addr != b.Addr().String() {
		t.Fatalf("a's book holds %+v for its own device", p)
	}
	if q, ok := b.book.peerFor(a.dev.Device.Public()); !ok || q.Kind != roster.KindOwn {
		t.Fatalf("b's book holds %+v for its own device", q)
	}
	// A stranger's certificate is signed by another user key: refused by a.
	// (The stranger's own side is told to dial a, as if it had scanned a's
	// code, so that the refusal is a's.)
	stranger.pair.mu.Lock()
	stranger.pair.dialing[a.dev.Cert.Device]++
	stranger.pair.mu.Unlock()
	if s, err := stranger.tr.OpenStream(ctx, a.Addr(), key, 0); err == nil {
		s.Close()
		t.Fatal("a stranger with its own valid certificate was accepted")
	}
	if _, ok := a.book.peerFor(stranger.dev.Device.Public()); ok {
		t.Fatal("a stranger was stored")
	}
}

func TestBlockedUserGetsNoAnswer(t *testing.T) {
	a := startAgent(t, newPhrase(t), 0, "alice", "127.0.0.2")
	c := startAgent(t, newPhrase(t), 0, "carol", "127.0.0.4")
	if _, err := c.friendAction("block", a.dev.Identity.UserID.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.pair.show(0); err != nil {
		t.Fatal(err)
	}
	sc, err := c.pair.show(0)
	if err != nil {
		t.Fatal(err)
	}
	// Alice scans carol's code and reaches carol's agent, which says nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := a.pair.scan(ctx, sc.Code)
	if err == nil {
		t.Fatalf("alice's scan of a code whose owner blocked her: %+v", res)
	}
	if control.BadInput(err) {
		t.Fatalf("the refusal told alice why: %v", err)
	}
	if _, ok := c.book.peerFor(a.dev.Device.Public()); ok {
		t.Fatal("carol stored the blocked user's device")
	}
	if fs := c.friends(); len(fs) != 1 || fs[0].Status != roster.StatusBlocked || len(fs[0].Devices) != 0 {
		t.Fatalf("carol's friends: %+v", fs)
	}
}

// Our own address record's version is stored, so that an agent restarted
// with a clock an hour behind still numbers its records above the old
// ones, which its peers would otherwise ignore.
func TestOwnRecordVersionSurvivesClockGoingBack(t *testing.T) {
	a := startAgent(t, newPhrase(t), 0, "alice", "127.0.0.2")
	waitFor(t, "a first record", func() bool { _, v := a.presence.OwnRecord(); return v != 0 })
	_, before := a.presence.OwnRecord()
	a.stop()
	back := func() time.Time { return time.Now().Add(-time.Hour) }
	a2 := restart(t, a, Config{Listen: "127.0.0.2:0", Heartbeat: 100 * time.Millisecond, Now: back})
	waitFor(t, "a record after the restart", func() bool { _, v := a2.presence.OwnRecord(); return v != 0 })
	if _, after := a2.presence.OwnRecord(); after <= before {
		t.Fatalf("after a restart with the clock an hour back, record version %d, was %d", after, before)
	}
}
