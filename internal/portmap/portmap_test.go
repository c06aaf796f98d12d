package portmap

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func startMapper(t *testing.T, r *fakeRouter, cfg Config) (*Mapper, func()) {
	t.Helper()
	cfg.Gateway = r.addr
	if cfg.Port == 0 {
		cfg.Port = 4242
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 300 * time.Millisecond
	}
	cfg.NoUPnP = true
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, runMapper(t, m)
}

// runMapper runs m until the returned stop (or the test's end), which
// fails the test if Run does not return within 30 s.
func runMapper(t *testing.T, m *Mapper) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var stopped bool
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return within 30 s of its context ending")
		}
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mapRequests(rs []fakeRequest) (maps, deletes int) {
	for _, r := range rs {
		if r.op != 1 {
			continue
		}
		if r.lifetime == 0 {
			deletes++
		} else {
			maps++
		}
	}
	return maps, deletes
}

// The router grants the mapping for 2 s: the mapper reports the external
// address, renews it before it lapses, and deletes it when it stops.
func TestMappingGrantedRenewedDeleted(t *testing.T) {
	r := newFakeRouter(t, "grant")
	r.set("grant", 2)
	m, stop := startMapper(t, r, Config{Lifetime: time.Hour})
	want := netip.MustParseAddrPort("203.0.113.7:4242")
	waitFor(t, "mapped", func() bool { ext, ok := m.External(); return ok && ext == want })
	st := m.Status()
	if st.Protocol != ProtoNATPMP || st.Lifetime != 2*time.Second || st.Gateway != r.addr || st.Err != "" {
		t.Fatalf("status %+v", st)
	}
	waitFor(t, "renewed", func() bool { n, _ := mapRequests(r.seen()); return n >= 3 })
	for _, q := range r.seen() {
		if q.op == 1 && q.lifetime != 0 && (q.internal != 4242 || q.lifetime != 3600) {
			t.Fatalf("a mapping request asked %+v", q)
		}
	}
	stop()
	if _, d := mapRequests(r.seen()); d != 1 {
		t.Fatalf("%d deletions at stop, want 1: %+v", d, r.seen())
	}
	if _, ok := m.External(); ok {
		t.Fatal("still mapped after Run returned")
	}
}

func TestMappingRefused(t *testing.T) {
	r := newFakeRouter(t, "refuse")
	m, stop := startMapper(t, r, Config{})
	waitFor(t, "refusal recorded", func() bool { return strings.Contains(m.Status().Err, "Refused") })
	if _, ok := m.External(); ok {
		t.Fatal("mapped although refused")
	}
	stop()
	if _, d := mapRequests(r.seen()); d != 0 {
		t.Fatal("deleted a mapping it never had")
	}
}

// A router that never answers: the request times out, the status says
// so, and Run still ends when asked.
func TestGatewaySilent(t *testing.T) {
	r := newFakeRouter(t, "silent")
	m, stop := startMapper(t, r, Config{Timeout: 200 * time.Millisecond})
	waitFor(t, "timeout recorded", func() bool { return strings.Contains(m.Status().Err, "Timed out") })
	stop()
	if len(r.seen()) == 0 {
		t.Fatal("the router saw no request")
	}
}

// Answers too short, with the wrong opcode, or of another version give
// no mapping and no panic; the mapper retries and maps once the router
// answers properly.
func TestGarbageAnswers(t *testing.T) {
	r := newFakeRouter(t, "garbage")
	m, _ := startMapper(t, r, Config{Retry: 50 * time.Millisecond})
	waitFor(t, "several garbage answers", func() bool { return len(r.seen()) >= 6 })
	if _, ok := m.External(); ok {
		t.Fatal("mapped on garbage")
	}
	if m.Status().Err == "" {
		t.Fatal("no reason given")
	}
	r.set("grant", 3600)
	waitFor(t, "mapped after the router recovered", func() bool { _, ok := m.External(); return ok })
}

func TestNewNeedsPort(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("no error without a port")
	}
}
