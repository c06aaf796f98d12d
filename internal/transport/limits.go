package transport

import (
	"context"
	"crypto/ed25519"
	"errors"
	"golang.org/x/time/rate"
	"net"
	"time"

	"github.com/quic-go/quic-go"
)

// Defaults of the limits in Config; see the package comment's "Limits".
const (
	DefaultMaxConns         = 256
	DefaultMaxStrangerConns = 8
	DefaultHandshakeRate    = 20 // new inbound handshakes per second
	DefaultHandshakeBurst   = 40

	// maxIncomingStreams bounds the concurrent bidirectional streams a
	// peer may open on one connection.
	maxIncomingStreams = 32
)

// errBusy is what ConnContext returns to make quic-go refuse a handshake
// (CONNECTION_REFUSED) when new handshakes come too fast.
var errBusy = errors.New("transport: too many new handshakes")

// handshakeGate decides on every inbound connection attempt before quic-go
// keeps any state for it: a token bucket caps the rate of new handshakes,
// and while the bucket runs low, or strangers hold many connections, source
// addresses are verified first with a stateless Retry, so that a flood of
// Initials from spoofed addresses creates no connection at all.
type handshakeGate struct {
	// Constant after newHandshakeGate.
	limit       *rate.Limiter // nil: no limit
	burst       int
	strangers   func() int
	strangerCap int
}

func newHandshakeGate(perSecond float64, burst int, strangers func() int, strangerCap int) *handshakeGate {
	burst = max(burst, 1)
	g := &handshakeGate{burst: burst, strangers: strangers, strangerCap: strangerCap}
	if perSecond > 0 {
		g.limit = rate.NewLimiter(rate.Limit(perSecond), burst)
	}
	return g
}

// underLoad reports whether a new connection attempt should prove its
// source address first: strangers hold half their cap, or the handshake
// bucket is below half.
func (g *handshakeGate) underLoad() bool {
	if g.strangerCap > 0 && g.strangers() >= (g.strangerCap+1)/2 {
		return true
	}
	return g.limit != nil && g.limit.Tokens() < float64(g.burst)/2
}

// take spends a token for a new handshake; false when there is none.
func (g *handshakeGate) take() bool { return g.limit == nil || g.limit.Allow() }

// verifySourceAddress is quic.Transport.VerifySourceAddress.
func (t *Transport) verifySourceAddress(net.Addr) bool {
	if t.gate.underLoad() {
		t.retries.Add(1)
		return true
	}
	return false
}

// connContext is quic.Transport.ConnContext: it admits or refuses a new
// inbound handshake.
func (t *Transport) connContext(ctx context.Context, _ *quic.ClientInfo) (context.Context, error) {
	if !t.gate.take() {
		t.refused.Add(1)
		return nil, errBusy
	}
	return ctx, nil
}

// isStranger asks Config.Stranger about a peer.
func (t *Transport) isStranger(peer ed25519.PublicKey) bool {
	return t.stranger != nil && t.stranger(peer)
}

// strangerCount is how many open inbound connections are strangers'. It
// takes no lock: the gate asks it for every connection attempt.
func (t *Transport) strangerCount() int { return int(t.nStrangers.Load()) }

// makeRoomLocked decides whether a new connection fits under the caps. It
// returns the connection to evict to make room for it, if any, and false
// when the new one must be refused instead. The victim is the stranger
// that has been idle longest, else the oldest stranger: a stranger holds
// no state anyone relies on, and one that is busy is most likely the
// attacker who keeps it so. Called with mu held.
func (t *Transport) makeRoomLocked(stranger bool) (victim *Conn, ok bool) {
	full := len(t.conns) >= t.maxConns
	if !full && !(stranger && t.strangerCount() >= t.maxStrangers) {
		return nil, true
	}
	var idle, oldest *Conn
	var idleAt time.Time
	for c := range t.conns {
		if !c.stranger {
			continue
		}
		if oldest == nil || c.created.Before(oldest.created) {
			oldest = c
		}
		c.mu.Lock()
		free, since := c.refs == 0 && !c.retired, c.idleSince
		c.mu.Unlock()
		if free && (idle == nil || since.Before(idleAt)) {
			idle, idleAt = c, since
		}
	}
	switch {
	case idle != nil:
		return idle, true
	case oldest != nil:
		return oldest, true
	default:
		return nil, false // full of own devices and friends: refuse the newcomer
	}
}

// CloseStrangers closes every inbound connection from a stranger whose peer
// Config.Stranger still calls one, as when the invite that let strangers in
// has expired or been used, and returns how many it closed. A peer that is
// no stranger now (it paired since it connected) keeps its connection, which
// still counts as a stranger's against MaxStrangerConns until it closes.
func (t *Transport) CloseStrangers() int {
	t.mu.Lock()
	var cs []*Conn
	for c := range t.conns {
		if c.stranger {
			cs = append(cs, c)
		}
	}
	t.mu.Unlock()
	n := 0
	for _, c := range cs {
		if !t.isStranger(c.peer) {
			continue
		}
		// Forgotten now, so that the counts are right at once; its
		// watcher forgets it again, harmlessly, once it has closed.
		t.mu.Lock()
		t.forgetLocked(c)
		t.mu.Unlock()
		c.closeWith(codeStranger, "invite closed")
		n++
	}
	return n
}
