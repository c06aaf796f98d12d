package presence_test

import (
	"crypto/ed25519"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/cluster/presence/presencetest"
)

// Run with: go test -run '^$' -bench . -benchtime 2000x ./cluster/presence
//
// The Ed25519 benchmarks are the reference: a heartbeat costs one Sign to
// send; handling one costs one Verify and, for the reply, one Sign.

func benchMessage() []byte { return presence.BenchMessage() }

func BenchmarkEd25519SignReference(b *testing.B) {
	key, msg := testKey("bench"), benchMessage()
	for b.Loop() {
		ed25519.Sign(key, msg)
	}
}

func BenchmarkEd25519VerifyReference(b *testing.B) {
	key, msg := testKey("bench"), benchMessage()
	pub, sig := key.Public().(ed25519.PublicKey), ed25519.Sign(key, msg)
	for b.Loop() {
		ed25519.Verify(pub, msg, sig)
	}
}

func BenchmarkHeartbeatEncodeSign(b *testing.B) {
	key, to := testKey("a"), pubOf(testKey("b"))
	rec := presence.SignRecord(key, netip.MustParseAddrPort("192.0.2.1:7117"), 1)
	var n int
	for b.Loop() {
		n = len(presence.EncodeBeat(presence.TypeHeartbeat, key, to, 1, 2, [][]byte{rec}))
	}
	b.ReportMetric(float64(n), "bytes/heartbeat")
}

// benchReceiver is node b, knowing node a, with a no-op Send. Its replay
// window for a is synced, at sequence number 1, as by an echoed reply.
func benchReceiver(b *testing.B) (*presence.Presence, ed25519.PrivateKey, netip.AddrPort) {
	ka, kb := testKey("a"), testKey("b")
	from := netip.MustParseAddrPort("192.0.2.1:7117")
	book := presencetest.NewBook()
	book.Add(presence.PeerInfo{Device: pubOf(ka), Own: true, Addr: from})
	var challenge []byte
	p, err := presence.New(presence.Config{Key: kb, Book: book, Send: func(pkt []byte, _ netip.AddrPort) error {
		if pkt[0] == presence.TypeHeartbeat {
			challenge = slices.Clone(pkt)
		}
		return nil
	}})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UnixNano()
	p.HandleDatagram(presence.EncodeBeat(presence.TypeHeartbeat, ka, p.Pub(), 1<<40, now, nil), from)
	if challenge == nil {
		b.Fatal("no heartbeat answered an unsynced one")
	}
	seq, t1 := binary.BigEndian.Uint64(challenge[34:]), int64(binary.BigEndian.Uint64(challenge[42:]))
	p.HandleDatagram(presence.EncodeReplyTo(ka, p.Pub(), 1, seq, t1, now, now, from, nil), from)
	if p.Stats().Resynced != 1 {
		b.Fatalf("not synced: %+v", p.Stats())
	}
	return p, ka, from
}

// BenchmarkHandleHeartbeat: decode, look up, verify, check freshness,
// take the sender's record (already held), sign and send the reply.
func BenchmarkHandleHeartbeat(b *testing.B) {
	p, ka, from := benchReceiver(b)
	to := p.Pub()
	rec := presence.SignRecord(ka, from, 1)
	pkts := make([][]byte, b.N)
	now := time.Now().UnixNano()
	for i := range pkts {
		pkts[i] = presence.EncodeBeat(presence.TypeHeartbeat, ka, to, uint64(i+2), now, [][]byte{rec})
	}
	before := p.Stats().Accepted
	b.ResetTimer()
	for i := range b.N {
		p.HandleDatagram(pkts[i], from)
	}
	b.StopTimer()
	if got := p.Stats().Accepted - before; got != uint64(b.N) {
		b.Fatalf("accepted %d of %d", got, b.N)
	}
}

// BenchmarkHandleUnknownSender: what a stranger's heartbeat costs us.
func BenchmarkHandleUnknownSender(b *testing.B) {
	p, _, from := benchReceiver(b)
	stranger := testKey("stranger")
	pkt := presence.EncodeBeat(presence.TypeHeartbeat, stranger, p.Pub(), 1, time.Now().UnixNano(), nil)
	before := p.Stats().SignatureChecks
	for b.Loop() {
		p.HandleDatagram(pkt, from)
	}
	if p.Stats().SignatureChecks != before {
		b.Fatal("a stranger cost a signature check")
	}
}

// BenchmarkHandleForgedSignature: what a flood of heartbeats that claim a
// known sender, with a fresh sequence number each and a bad signature,
// costs us per packet once its budget is spent: from another address than
// the sender's, and from the sender's own (spoofed). sig_checks/op is the
// share of packets that cost a verification.
func BenchmarkHandleForgedSignature(b *testing.B) {
	for _, name := range []string{"elsewhere", "spoofed-known-addr"} {
		b.Run(name, func(b *testing.B) {
			p, ka, known := benchReceiver(b)
			from := netip.MustParseAddrPort("198.51.100.1:4000")
			if name != "elsewhere" {
				from = known
			}
			pkt := presence.EncodeBeat(presence.TypeHeartbeat, testKey("forger"), p.Pub(), 2, time.Now().UnixNano(), nil)
			sender := pubOf(ka)
			copy(pkt[2:], sender[:])
			st := p.Stats()
			var seq uint64 = 2
			for b.Loop() {
				seq++
				binary.BigEndian.PutUint64(pkt[34:], seq)
				p.HandleDatagram(pkt, from)
			}
			got := p.Stats()
			b.ReportMetric(float64(got.SignatureChecks-st.SignatureChecks)/float64(b.N), "sig_checks/op")
		})
	}
}

// BenchmarkHeartbeatBandwidth reports the heartbeat traffic of one device
// at the default T = 15 s: the bytes of the heartbeats it sends and of the
// replies they get, per second, measured on the simulated network. With
// one peer a heartbeat carries one record (its sender's); with ten own
// devices it carries three (gossip).
func BenchmarkHeartbeatBandwidth(b *testing.B) {
	for _, n := range []int{2, 11} {
		b.Run(map[int]string{2: "1peer", 11: "10peers"}[n], func(b *testing.B) {
			var perDevice float64
			for i := range b.N {
				s := presencetest.New(b, presencetest.Options{N: n, Seed: uint64(i)})
				s.Run(2 * presence.DefaultInterval) // past the greetings
				before := s.Bytes
				const d = 200 * presence.DefaultInterval
				s.Run(d)
				perDevice = float64(s.Bytes-before) / float64(n) / d.Seconds()
			}
			b.ReportMetric(perDevice, "B/s/device")
		})
	}
}

// BenchmarkIdleAgent10Peers estimates the CPU share of an idle agent with
// ten peers at the default T: the simulated network of eleven devices is
// single-threaded, so its wall time divided by eleven devices and by the
// simulated time bounds one device's share from above.
func BenchmarkIdleAgent10Peers(b *testing.B) {
	var share float64
	for i := range b.N {
		s := presencetest.New(b, presencetest.Options{N: 11, Seed: uint64(i)})
		s.Run(2 * presence.DefaultInterval)
		const d = 100 * presence.DefaultInterval
		start := time.Now()
		s.Run(d)
		share = time.Since(start).Seconds() / 11 / d.Seconds()
	}
	b.ReportMetric(share*100, "cpu-%")
}

// Convergence after an address change, as a ratio to T, p50 and p99 over
// b.N simulated moves (each at a random phase of the heartbeat timers).
// Tailscale's budget for comparison: 6.5 s / 3 s ≈ 2.2.
func benchConverge(b *testing.B, noticed bool) {
	var ratios []float64
	for i := range b.N {
		took, T := moveOnce(b, uint64(i), noticed, time.Hour)
		if took < 0 {
			b.Fatal("never converged")
		}
		ratios = append(ratios, float64(took)/float64(T))
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "p50-T")
	b.ReportMetric(ratios[min(len(ratios)-1, len(ratios)*99/100)], "p99-T")
}

func BenchmarkConvergeMove(b *testing.B)   { benchConverge(b, true) }
func BenchmarkConvergeRebind(b *testing.B) { benchConverge(b, false) }
