package transport

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// strangerSet is a Config.Stranger over a set of keys that may change.
type strangerSet struct{ known *allowlist }

func (s strangerSet) stranger(peer ed25519.PublicKey) bool {
	return s.known.authorize(peer, netip.AddrPort{}, Inbound) != nil
}

// dialers starts n transports on 127.0.0.x that keep unused connections open.
func dialers(t *testing.T, n int) []*Transport {
	out := make([]*Transport, n)
	for i := range out {
		out[i] = listenT(t, Config{Key: testKey(fmt.Sprintf("stranger %d", i)), Listen: "127.0.0.5:0", Authorize: anyKey, IdleLinger: -1})
	}
	return out
}

// connectIdle dials to from from and leaves the connection unused.
func connectIdle(t *testing.T, from, to *Transport) (*Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := from.connect(ctx, to.LocalAddr(), to.PublicKey())
	if err != nil {
		return nil, err
	}
	c.release()
	return c, nil
}

func TestStrangerCapEvictsIdleStrangerFirst(t *testing.T) {
	kf := testKey("friend")
	known := newAllowlist(kf)
	srv := listenT(t, Config{Key: testKey("server"), Listen: "127.0.0.2:0", Authorize: anyKey,
		Stranger: strangerSet{known}.stranger, MaxStrangerConns: 2, HandshakeRate: -1})
	in := acceptAll(t, srv)
	ds := dialers(t, 3)

	// Two strangers: the first idle, the second holding a stream.
	if _, err := connectIdle(t, ds[0], srv); err != nil {
		t.Fatal(err)
	}
	first := nextConn(t, in)
	s := openT(t, ds[1], srv, 7)
	second := nextConn(t, in)
	if st := srv.Stats(); st.StrangerConns != 2 {
		t.Fatalf("StrangerConns = %d, want 2", st.StrangerConns)
	}
	// A friend does not count against the strangers' cap.
	friend := listenT(t, Config{Key: kf, Listen: "127.0.0.3:0", Authorize: anyKey, IdleLinger: -1})
	if _, err := connectIdle(t, friend, srv); err != nil {
		t.Fatal(err)
	}
	nextConn(t, in)
	// A third stranger evicts the idle one, not the busy one.
	if _, err := connectIdle(t, ds[2], srv); err != nil {
		t.Fatal(err)
	}
	nextConn(t, in)
	waitDone(t, first, "the idle stranger's connection")
	select {
	case <-second.Done():
		t.Fatal("the busy stranger was evicted before the idle one")
	default:
	}
	if _, err := s.Write([]byte("still here")); err != nil {
		t.Fatalf("the busy stranger's stream: %v", err)
	}
	st := srv.Stats()
	if st.StrangerConns != 2 || st.Conns != 3 || st.Evicted != 1 {
		t.Fatalf("stats = %+v, want 2 strangers of 3 connections, 1 evicted", st)
	}
}

func TestMaxConnsRefusesWhenNoStranger(t *testing.T) {
	srv := listenT(t, Config{Key: testKey("server"), Listen: "127.0.0.2:0", Authorize: anyKey, MaxConns: 2, HandshakeRate: -1})
	in := acceptAll(t, srv)
	ds := dialers(t, 3)
	for _, d := range ds[:2] {
		if _, err := connectIdle(t, d, srv); err != nil {
			t.Fatal(err)
		}
		nextConn(t, in)
	}
	// The server refuses the third before greeting it.
	if _, err := connectIdle(t, ds[2], srv); !errors.Is(err, ErrBusy) {
		t.Fatalf("a connection beyond MaxConns: %v, want ErrBusy", err)
	}
	if st := srv.Stats(); st.Conns != 2 || st.Rejected != 1 {
		t.Fatalf("stats = %+v, want 2 connections and 1 rejected", st)
	}
}

func TestCloseStrangers(t *testing.T) {
	kf := testKey("friend")
	known := newAllowlist(kf)
	srv := listenT(t, Config{Key: testKey("server"), Listen: "127.0.0.2:0", Authorize: anyKey,
		Stranger: strangerSet{known}.stranger, HandshakeRate: -1})
	in := acceptAll(t, srv)
	ds := dialers(t, 3)
	var strangers []*Conn
	for _, d := range ds {
		if _, err := connectIdle(t, d, srv); err != nil {
			t.Fatal(err)
		}
		strangers = append(strangers, nextConn(t, in))
	}
	friend := listenT(t, Config{Key: kf, Listen: "127.0.0.3:0", Authorize: anyKey, IdleLinger: -1})
	if _, err := connectIdle(t, friend, srv); err != nil {
		t.Fatal(err)
	}
	fc := nextConn(t, in)
	// The third stranger pairs: it is known now, and keeps its connection.
	known.mu.Lock()
	known.keys[fmt.Sprintf("%x", ds[2].PublicKey())] = true
	known.mu.Unlock()

	if n := srv.CloseStrangers(); n != 2 {
		t.Fatalf("CloseStrangers closed %d, want 2", n)
	}
	for _, c := range strangers[:2] {
		waitDone(t, c, "a stranger's connection")
	}
	for _, c := range []*Conn{strangers[2], fc} {
		select {
		case <-c.Done():
			t.Fatal("CloseStrangers closed a known peer's connection")
		default:
		}
	}
	// The one that paired still counts as a stranger's until it closes.
	if st := srv.Stats(); st.StrangerConns != 1 || st.Conns != 2 {
		t.Fatalf("stats = %+v, want 2 connections, one from a stranger", st)
	}
}

// TestHandshakeRateLimit: beyond the token bucket a new handshake is
// refused before quic-go keeps state for it, and the dialer is told the
// peer is busy; once the bucket runs low, source addresses are verified
// with a Retry.
func TestHandshakeRateLimit(t *testing.T) {
	srv := listenT(t, Config{Key: testKey("server"), Listen: "127.0.0.2:0", Authorize: anyKey,
		HandshakeRate: 1e-9, HandshakeBurst: 2})
	in := acceptAll(t, srv)
	ds := dialers(t, 3)
	for _, d := range ds[:2] {
		if _, err := connectIdle(t, d, srv); err != nil {
			t.Fatal(err)
		}
		nextConn(t, in)
	}
	_, err := connectIdle(t, ds[2], srv)
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("third handshake: %v, want ErrBusy", err)
	}
	st := srv.Stats()
	if st.Refused == 0 || st.Retries == 0 || st.Conns != 2 {
		t.Fatalf("stats = %+v, want 2 connections, refusals and Retries", st)
	}
}
