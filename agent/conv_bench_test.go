package agent

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kith-project/kith/conversation"
	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/store"
)

// convTrio starts alice, bob and carol on real UDP ports of 127.0.0.x,
// friends of each other, and a chat among them started by alice; it
// returns the agents and the conversation once bob and carol hold it.
func convTrio(t testing.TB) ([]*testAgent, conversation.ID) {
	t.Helper()
	var as []*testAgent
	for i, name := range []string{"alice", "bob", "carol"} {
		as = append(as, startAgent(t, newPhrase(t), 0, name, fmt.Sprintf("127.0.0.%d", i+2)))
	}
	pairAgents(t, as[0], as[1])
	pairAgents(t, as[0], as[2])
	pairAgents(t, as[1], as[2])
	for _, a := range as {
		for _, b := range as {
			if a != b {
				waitLong(t, "online", 60*time.Second, func() bool { return a.onlineSet()[b.dev.Cert.Device] })
			}
		}
	}
	return as, newChat(t, as)
}

// newChat has as[0] start a chat with the others and returns it once they
// hold it.
func newChat(t testing.TB, as []*testAgent) conversation.ID {
	t.Helper()
	res, err := controlAPI{as[0].Agent}.ConvNew(context.Background(), control.ConvNewRequest{
		Topic: "bench", Pattern: "chat", With: []string{as[1].dev.Cert.User.ID(), as[2].dev.Cert.User.ID()}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := conversation.ParseID(res.ConversationID)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as[1:] {
		waitLong(t, "the chat", 60*time.Second, func() bool { _, err := a.convs.book.Show(id); return err == nil })
	}
	return id
}

// held returns how many messages a holds in conversation id.
func held(a *testAgent, id conversation.ID) int {
	v, err := a.convs.book.Show(id)
	if err != nil {
		return 0
	}
	return len(v.Messages)
}

// BenchmarkConvDelivery measures, for a three-member conversation on
// loopback with real agents, the time from alice's Post until both bob
// and carol have stored the message (latency, p50 and p99), the rate of
// messages a burst of posts delivers to both (throughput), and beside
// them, in the same run, one QUIC round trip on an open connection plus
// one bbolt commit (fsync), the floor a delivery cannot go under.
func BenchmarkConvDelivery(b *testing.B) {
	as, id := convTrio(b)
	alice, others := as[0], as[1:]
	var changes []<-chan struct{}
	for _, a := range others {
		ch, cancel := a.convs.follow(id)
		b.Cleanup(cancel)
		changes = append(changes, ch)
	}
	waitAll := func(n int) {
		for i, a := range others {
			for held(a, id) < n {
				select {
				case <-changes[i]:
				case <-time.After(time.Second):
				}
			}
		}
	}
	b.Run("latency", func(b *testing.B) {
		var ds []time.Duration
		n := held(alice, id)
		for b.Loop() {
			start := time.Now()
			if _, err := alice.convs.book.Post(id, "text", "hello"); err != nil {
				b.Fatal(err)
			}
			n++
			waitAll(n)
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, "p99-ms")
	})
	b.Run("throughput", func(b *testing.B) {
		const burst = 100
		var total time.Duration
		for b.Loop() {
			// A conversation holds a bounded number of messages: a new
			// one for every burst, made outside the timing.
			id = newChat(b, as)
			changes = changes[:0]
			for _, a := range others {
				ch, cancel := a.convs.follow(id)
				b.Cleanup(cancel)
				changes = append(changes, ch)
			}
			start := time.Now()
			for range burst {
				if _, err := alice.convs.book.Post(id, "text", "burst"); err != nil {
					b.Fatal(err)
				}
			}
			waitAll(burst)
			total += time.Since(start)
		}
		b.ReportMetric(float64(burst*b.N)/total.Seconds(), "msgs/s")
	})
	b.Run("reference-rtt+fsync", func(b *testing.B) {
		p, ok := alice.book.peerFor(others[0].dev.Cert.Device)
		if !ok {
			b.Fatal("bob unknown")
		}
		probe := []convFrame{{Type: convProbe, Device: others[1].dev.Cert.Device}}
		ctx := context.Background()
		for b.Loop() {
			if _, err := alice.convs.exchange(ctx, p, probe); err != nil {
				b.Fatal(err)
			}
			if err := alice.st.Update(func(tx *store.Tx) error { return tx.Put(store.BucketMeta, "bench", 1) }); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestConvDeliveryDirect is the benchmark's setup as a test: a message
// reaches both other members.
func TestConvDeliveryDirect(t *testing.T) {
	as, id := convTrio(t)
	if _, err := as[0].convs.book.Post(id, "text", "hello"); err != nil {
		t.Fatal(err)
	}
	for _, a := range as[1:] {
		waitLong(t, "the message", 60*time.Second, func() bool { return held(a, id) == 1 })
	}
}
