package agent

import (
	"bytes"
	"context"
	"errors"
	"github.com/kith-project/kith/internal/ratelog"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

func register(t *testing.T, a *Agent, p Protocol) {
	t.Helper()
	if err := a.streams.register(p); err != nil {
		t.Fatal(err)
	}
}

// openRaw opens a stream from one agent's transport to another's, outside
// any protocol of ours, and writes first as its first bytes.
func openRaw(t *testing.T, from, to *testAgent, first []byte) *transport.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := from.tr.OpenStream(ctx, to.Addr(), to.dev.Device.Public().Ed25519(), first[0])
	if err != nil {
		t.Fatalf("opening a stream: %v", err)
	}
	if len(first) > 1 {
		// The peer may have reset the stream on its first byte already; a
		// failed write is for the caller's checks to judge.
		s.Write(first[1:])
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// refused asserts that the peer reset s without sending a byte.
func refused(t *testing.T, s *transport.Stream, what string) {
	t.Helper()
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, err := s.Read(buf)
	if n != 0 || err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("%s: read %d bytes (%q), err %v; want a reset and nothing", what, n, buf[:n], err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the stream was left open, not reset: %v", what, err)
	}
}

// A stranger let in by an open invite may open the pairing stream only:
// any other stream is reset at once, and it learns nothing.
func TestStrangerGetsOnlyPairing(t *testing.T) {
	a := startAgent(t, newPhrase(t), 0, "alice", "127.0.0.2", func(a *Agent) {
		// A protocol for own devices and friends only.
		register(t, a, Protocol{ID: 0x72, Name: "friends-only", Openers: OpenOwn | OpenFriend,
			Handle: func(_ context.Context, s *transport.Stream) { s.Write([]byte("secret")) }})
	})
	stranger := startAgent(t, newPhrase(t), 0, "mallory", "127.0.0.5")
	if _, err := a.pair.show(0); err != nil {
		t.Fatal(err)
	}
	// The stranger's side lets itself dial alice, as a scan would.
	stranger.pair.mu.Lock()
	stranger.pair.dialing[a.dev.Cert.Device]++
	stranger.pair.mu.Unlock()

	// A protocol nobody registered, and one that exists only for others.
	s := openRaw(t, stranger, a, []byte{0x7e, 'h', 'i'})
	refused(t, s, "an unknown protocol from a stranger")

	s = openRaw(t, stranger, a, []byte{0x72, 'h', 'i'})
	refused(t, s, "a friends-only protocol from a stranger")

	// The pairing stream itself is served: a malformed Hello is refused by
	// the pairing code, which means the stream got there.
	s = openRaw(t, stranger, a, []byte{protoPairing, 0, 0, 0, 2, '{', '}'})
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(s); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the pairing stream was not served: %v", err)
		}
	}
}

// A friend may open the streams friends may open, and no others.
func TestFriendStreamsAdmitted(t *testing.T) {
	a := startAgent(t, newPhrase(t), 0, "alice", "127.0.0.2", func(a *Agent) {
		register(t, a, Protocol{ID: 0x72, Name: "friends", Openers: OpenFriend,
			Handle: func(_ context.Context, s *transport.Stream) { s.Write([]byte("hello friend")) }})
		register(t, a, Protocol{ID: 0x7d, Name: "own-only", Openers: OpenOwn,
			Handle: func(_ context.Context, s *transport.Stream) { s.Write([]byte("own")) }})
	})
	b := startAgent(t, newPhrase(t), 0, "bob", "127.0.0.3")
	pairAgents(t, a, b)
	s := openRaw(t, b, a, []byte{0x72})
	s.CloseWrite()
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "hello friend" {
		t.Fatalf("a friend's admitted stream: %q, %v", got, err)
	}
	refused(t, openRaw(t, b, a, []byte{0x7d}), "an own-devices protocol from a friend")
}

// A protocol with a listener hands its streams to Accept, and the limit on
// concurrent streams resets the ones past it.
func TestStreamListenerAndLimit(t *testing.T) {
	phrase := newPhrase(t)
	ln := NewStreamListener(&net.UDPAddr{}, 4)
	defer ln.Close()
	a := startAgent(t, phrase, 0, "laptop", "127.0.0.2", func(a *Agent) {
		register(t, a, Protocol{ID: 0x7b, Name: "listener", Openers: OpenOwn, MaxStreams: 1, Listener: ln})
	})
	b := startAgent(t, phrase, 1, "phone", "127.0.0.3")
	s1 := openRaw(t, b, a, []byte{0x7b, 'x'})
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 'x' {
		t.Fatalf("the listener's stream: %q %v", buf, err)
	}
	// The one slot is taken: a second stream is reset.
	refused(t, openRaw(t, b, a, []byte{0x7b}), "a stream past the protocol's limit")
	// Closing the first frees the slot.
	c.Close()
	s1.Close()
	s3 := openRaw(t, b, a, []byte{0x7b, 'y'})
	defer s3.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	select {
	case c3 := <-acc:
		if c3 == nil {
			t.Fatal("Accept failed")
		}
		c3.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the freed slot was not reused")
	}
}

func TestRegistryRefusesBadProtocols(t *testing.T) {
	var r registry
	h := func(context.Context, *transport.Stream) {}
	if err := r.register(Protocol{ID: 1, Name: "a", Openers: OpenOwn, Handle: h}); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]Protocol{
		"twice":         {ID: 1, Name: "b", Openers: OpenOwn, Handle: h},
		"no handler":    {ID: 2, Name: "c", Openers: OpenOwn},
		"both":          {ID: 3, Name: "d", Openers: OpenOwn, Handle: h, Listener: NewStreamListener(nil, 1)},
		"admits nobody": {ID: 4, Name: "e", Handle: h},
	} {
		if err := r.register(p); err == nil {
			t.Errorf("%s: registered", name)
		}
	}
}

// An own device whose certificate chains to our user key is refused once
// it was revoked, on first contact and after.
func TestRevokedOwnDeviceRefused(t *testing.T) {
	phrase := newPhrase(t)
	a := startAgent(t, phrase, 0, "laptop", "127.0.0.2")
	b := startAgent(t, phrase, 5, "tablet", "127.0.0.3")
	user, err := seed.DeriveUser(phrase.Seed(""))
	if err != nil {
		t.Fatal(err)
	}
	rev, err := user.Revoke(seed.Revocation{Device: b.dev.Cert.Device, Index: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.book.change(roster.Change{Op: roster.OpRevoke, Revocation: rev.Marshal()}, nil, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s, err := b.tr.OpenStream(ctx, a.Addr(), a.dev.Device.Public().Ed25519(), 0x7f); err == nil {
		s.Close()
		t.Fatal("a revoked own device was accepted by its certificate")
	}
	if _, ok := a.book.peerFor(b.dev.Cert.Device); ok {
		t.Fatal("a revoked own device was stored as reachable")
	}
}

// Removing a friend closes the connections to their devices, as blocking
// does.
func TestRemoveClosesConnections(t *testing.T) {
	a := startAgent(t, newPhrase(t), 0, "alice", "127.0.0.2")
	b := startAgent(t, newPhrase(t), 0, "bob", "127.0.0.3")
	pairAgents(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := b.tr.OpenStream(ctx, a.Addr(), a.dev.Device.Public().Ed25519(), 0x7f)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := a.friendAction("remove", b.dev.Cert.User.ID()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Conn().Done():
	case <-ctx.Done():
		t.Fatal("a removed friend's connection stayed open")
	}
}

// Presence moves a device from its packet path; the book writes the move
// on its own goroutine, soon after, never on the caller's.
func TestAddressWrittenByTheBook(t *testing.T) {
	a := startAgent(t, newPhrase(t), 0, "alice", "127.0.0.2")
	// A friend's device that sends nothing, so that no packet of its
	// moves it back before the write.
	f := roster.Friend{UserID: [32]byte{1}, Name: "bob", Status: roster.StatusFriend, PairedAt: time.Now().UTC()}
	p := Peer{Device: roster.Device{DeviceID: [32]byte{2}, UserID: f.UserID, Kind: roster.KindFriend, Name: "bob"}, Addr: "127.0.0.3:1"}
	if err := a.book.addPairing(f, p, nil); err != nil {
		t.Fatal(err)
	}
	to := netip.MustParseAddrPort("127.0.0.9:4242")
	if !a.book.setAddr(p.DeviceID, to, 9, time.Now()) {
		t.Fatal("setAddr did not report a move")
	}
	waitFor(t, "the book's writer to store the move", func() bool {
		var l Local
		ok, err := a.st.Get(store.BucketPeers, p.DeviceID.ID(), &l)
		return ok && err == nil && l.Addr == to.String() && l.AddrVersion == 9
	})
}

// A blocked device is not moved, and nothing of its is written.
func TestBlockedDeviceNotMoved(t *testing.T) {
	a := startAgent(t, newPhrase(t), 0, "alice", "127.0.0.2")
	f := roster.Friend{UserID: [32]byte{1}, Name: "bob", Status: roster.StatusFriend, PairedAt: time.Now().UTC()}
	p := Peer{Device: roster.Device{DeviceID: [32]byte{2}, UserID: f.UserID, Kind: roster.KindFriend, Name: "bob"}, Addr: "127.0.0.3:1"}
	if err := a.book.addPairing(f, p, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.book.setStatus(f.UserID, roster.StatusBlocked); err != nil {
		t.Fatal(err)
	}
	if a.book.setAddr(p.DeviceID, netip.MustParseAddrPort("127.0.0.9:4242"), 9, time.Now()) {
		t.Fatal("a blocked device was moved")
	}
	if !a.book.blockedAddr(netip.MustParseAddrPort("127.0.0.3:1")) {
		t.Fatal("the blocked device's last address is no longer dropped")
	}
	a.book.flush()
	var l Local
	if ok, _ := a.st.Get(store.BucketPeers, p.DeviceID.ID(), &l); !ok || l.Addr != "127.0.0.3:1" {
		t.Fatalf("stored %+v for the blocked device", l)
	}
}

// Completing a pairing writes the friend, the device and both used
// invites in one transaction: if any write fails, none is kept.
func TestPairingIsOneTransaction(t *testing.T) {
	a := startAgent(t, newPhrase(t), 0, "alice", "127.0.0.2")
	boom := errors.New("disk full")
	f := roster.Friend{UserID: [32]byte{1}, Name: "bob", Status: roster.StatusFriend, PairedAt: time.Now().UTC()}
	p := Peer{Device: roster.Device{DeviceID: [32]byte{2}, UserID: f.UserID, Kind: roster.KindFriend, Name: "bob"}, Addr: "127.0.0.3:1"}
	err := a.book.addPairing(f, p, func(tx *store.Tx) error {
		if err := tx.Put(store.BucketInvites, "x", usedInvite{}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("addPairing: %v", err)
	}
	if fs, ps := a.book.snapshot(); len(fs) != 0 || len(ps) != 0 {
		t.Fatalf("a failed pairing left %v and %v in memory", fs, ps)
	}
	for _, b := range []string{store.BucketFriends, store.BucketDevices, store.BucketPeers, store.BucketInvites} {
		n := 0
		a.st.List(b, func(string, []byte) error { n++; return nil })
		if n != 0 {
			t.Errorf("a failed pairing left %d records in %s", n, b)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	for name, c := range map[string]Config{
		"no home":        {},
		"missing home":   {Home: filepath.Join(dir, "nope")},
		"home is a file": {Home: file},
		"bad listen":     {Home: dir, Listen: "localhost"},
		"short beat":     {Home: dir, Heartbeat: time.Microsecond},
		"long invites":   {Home: dir, InviteTTL: 100 * time.Hour},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: valid", name)
		}
	}
	if err := (Config{Home: dir}).Validate(); err != nil {
		t.Errorf("the zero config with a home: %v", err)
	}
}

// Close stops a running agent and waits for it; it is idempotent, and Run
// after Close fails.
func TestCloseWaitsAndIsIdempotent(t *testing.T) {
	dir, st, dev := newDevice(t, newPhrase(t), 0, "alice")
	a, err := New(Config{Home: dir, Listen: "127.0.0.2:0"}, dev, st)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	waitFor(t, "Run to start", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.ran != nil
	})
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Run closes ran as it returns; the goroutine's send of its result
	// comes after, so it is not asserted to be there already.
	a.mu.Lock()
	ran := a.ran
	a.mu.Unlock()
	select {
	case <-ran:
	default:
		t.Fatal("Close returned before Run did")
	}
	if err := <-done; err != nil {
		t.Fatalf("Run after Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	if err := a.Run(context.Background()); !errors.Is(err, errRunTwice) {
		t.Fatalf("Run after Close: %v", err)
	}
	// An agent closed without ever running releases its port.
	b, err := New(Config{Home: dir, Listen: "127.0.0.2:0"}, dev, st)
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatalf("the port of a closed agent is still bound: %v", err)
	}
	c.Close()
}

// A friend's profile may say anything; the name kept and shown is the one
// in the friend's certificate, which cannot carry terminal escapes.
func TestFriendNameIsTheCertifiedOne(t *testing.T) {
	a := startAgent(t, newPhrase(t), 0, "alice", "127.0.0.2")
	b := startAgent(t, newPhrase(t), 0, "bob", "127.0.0.3")
	b.dev.Identity.Name = "\x1b]0;pwned\x07\x1b[2J\u202ebob"
	pairAgents(t, a, b)
	fs := a.friends()
	if len(fs) != 1 || fs[0].Name != "bob" || fs[0].Devices[0].Name != "bob" {
		t.Fatalf("alice keeps bob as %+v", fs)
	}
}

// A peer that keeps changing its source address costs a few writes a
// second, not one fsync per packet.
func TestAddressWritesAreBatched(t *testing.T) {
	a := startAgent(t, newPhrase(t), 0, "alice", "127.0.0.2")
	b := startAgent(t, newPhrase(t), 0, "bob", "127.0.0.3")
	pairAgents(t, a, b)
	b.stop() // no packet of bob's moves him back meanwhile
	before := a.book.writes.Load()
	start := time.Now()
	const moves = 2000
	for i := range moves {
		a.book.setAddr(b.dev.Cert.Device, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.9"), uint16(1000+i)), 0, time.Now())
	}
	elapsed := time.Since(start)
	a.book.flush()
	// One write per minWriteGap at most, plus the flush and a ticker's.
	limit := uint64(elapsed/minWriteGap) + 3
	if n := a.book.writes.Load() - before; n > limit {
		t.Fatalf("%d moves in %v made %d writes, more than %d", moves, elapsed, n, limit)
	}
	var l Local
	if ok, err := a.st.Get(store.BucketPeers, b.dev.Cert.Device.ID(), &l); !ok || err != nil || l.Addr != "127.0.0.9:2999" {
		t.Fatalf("the last move was not the one stored: %+v %v %v", l, ok, err)
	}
}

// lockedBuffer is a bytes.Buffer the agent's goroutines may log to while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A stranger who opens stream after refused stream makes the agent write a
// few debug lines, not one per stream.
func TestRefusedStreamsLogBounded(t *testing.T) {
	var logs lockedBuffer
	cfg := Config{Listen: "127.0.0.2:0", Heartbeat: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	a := startWith(t, cfg, newPhrase(t), 0, "alice")
	stranger := startAgent(t, newPhrase(t), 0, "mallory", "127.0.0.5")
	if _, err := a.pair.show(0); err != nil {
		t.Fatal(err)
	}
	stranger.pair.mu.Lock()
	stranger.pair.dialing[a.dev.Cert.Device]++
	stranger.pair.mu.Unlock()
	start := time.Now()
	const streams = 200
	for range streams {
		refused(t, openRaw(t, stranger, a, []byte{0x7e}), "an unknown protocol")
	}
	elapsed := time.Since(start)
	n := strings.Count(logs.String(), `msg="stream refused"`)
	if limit := ratelog.Burst + int(elapsed.Seconds()*ratelog.PerSecond) + 1; n == 0 || n > limit {
		t.Fatalf("%d refused streams in %v wrote %d debug lines; want 1..%d", streams, elapsed, n, limit)
	}
}
