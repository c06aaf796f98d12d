package agent

import (
	"context"
	"testing"
	"time"

	"github.com/kith-project/kith/conversation"
	"github.com/kith-project/kith/internal/control"
)

// convWait bounds the waits of these tests: generous, for a loaded machine.
const convWait = 60 * time.Second

// Store-and-forward through a friend: bob and carol are alice's friends,
// not each other's. Carol is offline when bob posts; alice's device keeps
// bob's envelope for her, delivers it when she is back, and relays her ack,
// which drains bob's outbox; alice's queue is then empty.
func TestConvForwardThroughFriend(t *testing.T) {
	alice := startAgent(t, newPhrase(t), 0, "alice", "127.0.0.2")
	bob := startAgent(t, newPhrase(t), 0, "bob", "127.0.0.3")
	carol := startAgent(t, newPhrase(t), 0, "carol", "127.0.0.4")
	pairAgents(t, alice, bob)
	pairAgents(t, alice, carol)
	for _, p := range []struct{ a, b *testAgent }{{alice, bob}, {alice, carol}, {bob, alice}, {carol, alice}} {
		waitLong(t, "online", convWait, func() bool { return p.a.onlineSet()[p.b.dev.Cert.Device] })
	}
	res, err := controlAPI{alice.Agent}.ConvNew(context.Background(), control.ConvNewRequest{
		Topic: "forwarding", Pattern: "debate", Rule: "voted() == n",
		With: []string{bob.dev.Cert.User.ID(), carol.dev.Cert.User.ID()}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := conversation.ParseID(res.ConversationID)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []*testAgent{bob, carol} {
		waitLong(t, "the debate", convWait, func() bool { _, err := a.convs.book.Show(id); return err == nil })
	}
	carolDev := carol.dev.Cert.Device
	carol.stop()
	waitLong(t, "carol offline at alice", convWait, func() bool { return !alice.onlineSet()[carolDev] })

	if _, err := bob.convs.book.Post(id, "position", "through alice"); err != nil {
		t.Fatal(err)
	}
	waitLong(t, "alice keeps bob's envelope for carol", convWait, func() bool {
		n, _, _ := alice.convs.fwd.stats()
		return n > 0
	})
	if len(bob.convs.book.Pending(carolDev, 10)) == 0 {
		t.Fatal("bob's outbox dropped the envelope for carol before she acknowledged it")
	}

	carol = restart(t, carol, Config{Listen: carol.Addr().String(), Heartbeat: 100 * time.Millisecond})
	waitLong(t, "carol holds bob's position", convWait, func() bool { return held(carol, id) == 1 })
	waitLong(t, "carol's ack drains bob's outbox", convWait, func() bool { return len(bob.convs.book.Pending(carolDev, 10)) == 0 })
	waitLong(t, "alice's forward queue empties", convWait, func() bool {
		n, _, _ := alice.convs.fwd.stats()
		return n == 0
	})
}

// A sync frame is answered for an own device only, with the conversation's
// envelopes, genesis first; a probe says whether the server reaches a
// device; a forward for a device the server does not know is refused.
func TestConvServerAnswers(t *testing.T) {
	phrase := newPhrase(t)
	a0 := startAgent(t, phrase, 0, "alice-0", "127.0.0.2")
	a1 := startAgent(t, phrase, 1, "alice-1", "127.0.0.3")
	bob := startAgent(t, newPhrase(t), 0, "bob", "127.0.0.4")
	pairAgents(t, a0, a1)
	pairAgents(t, a0, bob)
	res, err := controlAPI{a0.Agent}.ConvNew(context.Background(), control.ConvNewRequest{
		Topic: "sync", Pattern: "chat", With: []string{bob.dev.Cert.User.ID()}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := conversation.ParseID(res.ConversationID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a0.convs.book.Post(id, "text", "one"); err != nil {
		t.Fatal(err)
	}
	own, ok := a0.book.peerFor(a1.dev.Cert.Device)
	if !ok {
		t.Fatal("alice-1 unknown to alice-0")
	}
	friend, ok := a0.book.peerFor(bob.dev.Cert.Device)
	if !ok {
		t.Fatal("bob unknown to alice-0")
	}
	var stranger [32]byte
	stranger[0] = 9
	answers := a0.convs.answer(own, []convFrame{
		{Type: convSync, Conv: id},
		{Type: convProbe, Device: bob.dev.Cert.Device},
		{Type: convProbe, Device: stranger},
		{Type: convForward, Device: stranger, Envelope: []byte("x")},
	})
	if a := answers[0]; a.Type != convEnvelopes || len(a.Envelopes) != 2 {
		t.Fatalf("sync from an own device: %+v", a)
	}
	if h, err := conversation.Inspect(answers[0].Envelopes[0]); err != nil || h.Kind != "genesis" {
		t.Fatalf("the first synced envelope: %+v %v", h, err)
	}
	if a := answers[1]; a.Type != convReach || a.Reach == reachUnknown {
		t.Fatalf("probe of bob: %+v", a)
	}
	if a := answers[2]; a.Type != convReach || a.Reach != reachUnknown {
		t.Fatalf("probe of a stranger: %+v", a)
	}
	if a := answers[3]; a.Type != convRefused || a.Code != convCodeUnknown {
		t.Fatalf("forward to a stranger: %+v", a)
	}
	if a := a0.convs.answer(friend, []convFrame{{Type: convSync, Conv: id}})[0]; a.Type != convRefused || a.Code != convCodeDenied {
		t.Fatalf("sync from a friend: %+v", a)
	}
	// The own device that lacks it fetches it (here: one that has it
	// already takes the duplicates and stays as it was).
	waitLong(t, "alice-1 online", convWait, func() bool { return a1.onlineSet()[a0.dev.Cert.Device] })
	if r := a1.convs.fetch(context.Background(), a0.dev.Cert.Device, id); !r.ok {
		t.Fatalf("fetch: %+v", r)
	}
	waitLong(t, "alice-1 holds the chat", convWait, func() bool { return held(a1, id) == 1 })
}

// The Book asks the Directory inside its store transactions, while a
// roster change may hold the address book's lock and wait for the store:
// the Directory must answer without that lock (a deadlock seen in the
// demo, once in a few runs under load).
func TestConvDirectoryWithoutBookLock(t *testing.T) {
	a := startAgent(t, newPhrase(t), 0, "alice", "127.0.0.2")
	a.book.mu.Lock()
	defer a.book.mu.Unlock()
	done := make(chan int, 1)
	go func() {
		d := directory{a.Agent}
		n := len(d.Certs(a.dev.Cert.User))
		if d.Revoked(a.dev.Cert.Device) {
			n = -1
		}
		done <- n
	}()
	select {
	case n := <-done:
		if n != 1 {
			t.Fatalf("the directory lists %d certificates of this user, want this device's", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the directory waits for the address book's lock")
	}
}
