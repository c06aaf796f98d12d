package transport

import (
	"context"
	"testing"
	"time"
)

func TestClosePeerCutsBothDirections(t *testing.T) {
	ka, kb, kc := testKey("a"), testKey("b"), testKey("c")
	a := listenT(t, Config{Key: ka, Listen: "127.0.0.2:0", Authorize: newAllowlist(kb, kc).authorize})
	b := listenT(t, Config{Key: kb, Listen: "127.0.0.3:0", Authorize: newAllowlist(ka).authorize})
	c := listenT(t, Config{Key: kc, Listen: "127.0.0.4:0", Authorize: newAllowlist(ka).authorize})
	inA := acceptAll(t, a)
	acceptAll(t, b)
	ctx := context.Background()

	out, err := a.connect(ctx, b.LocalAddr(), pubOf(kb)) // a dialed b
	if err != nil {
		t.Fatal(err)
	}
	fromC, err := c.connect(ctx, a.LocalAddr(), pubOf(ka)) // c dialed a
	if err != nil {
		t.Fatal(err)
	}
	in := nextConn(t, inA)
	if n := a.ClosePeer(pubOf(kb)); n != 1 {
		t.Fatalf("ClosePeer(b) closed %d connections, want 1", n)
	}
	select {
	case <-out.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the dialed connection to b is still open")
	}
	select {
	case <-in.Done():
		t.Fatal("closing b's connections closed c's")
	default:
	}
	if n := a.ClosePeer(pubOf(kc)); n != 1 {
		t.Fatalf("ClosePeer(c) closed %d connections, want 1", n)
	}
	select {
	case <-fromC.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("c did not see its connection closed")
	}
}
