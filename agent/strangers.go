package agent

import (
	"context"
	"crypto/ed25519"
	"time"

	"github.com/kith-project/kith/seed"
)

// Strangers are keys no roster knows, let in only while an invite of ours is
// open. The transport bounds their connections (transport.Config.MaxConns,
// MaxStrangerConns) and evicts them first; the agent closes them all once no
// invite is open any more, expired or used, and bounds their streams per
// connection (maxStrangerStreams) besides the pairing protocol's own limit.

// maxStrangerStreams bounds the streams one stranger's connection may have
// served at once: a pairing needs one.
const maxStrangerStreams = 2

// isStranger is transport.Config.Stranger: a key the book does not know,
// unless it is the device of an invite the user scanned and this device is
// dialing now to pair: a connection that device opened to us may be the one
// our Hello travels on. Own devices recognised by their certificate are in
// the book by the time the transport asks.
func (a *Agent) isStranger(peer ed25519.PublicKey) bool {
	if _, known := a.book.peerForKey(peer); known {
		return false
	}
	d, ok := devOf(peer)
	return !ok || !a.pair.dialingDevice(d)
}

// dialingDevice reports whether this device is dialing d to pair.
func (p *pairer) dialingDevice(d seed.DevicePublic) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dialing[d] > 0
}

// invitesChanged wakes closeStrangers: an invite was shown or used.
func (a *Agent) invitesChanged() {
	select {
	case a.inviteWake <- struct{}{}:
	default:
	}
}

// openUntil reports whether an invite of ours is open and, if so, when the
// last open one expires.
func (p *pairer) openUntil() (bool, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.a.cfg.Now()
	var until time.Time
	for _, m := range p.machines {
		if exp := m.Ours().Expires; !m.Done() && now.Before(exp) && exp.After(until) {
			until = exp
		}
	}
	return !until.IsZero(), until
}

// strangerRecheck is how often closeStrangers looks again while strangers'
// connections remain with no invite open: one may have finished its
// handshake just as the invite closed.
const strangerRecheck = time.Second

// closeStrangers is a service: whenever no invite is open, it closes the
// connections of strangers.
func (a *Agent) closeStrangers(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := time.Duration(-1)
		if open, until := a.pair.openUntil(); open {
			wait = max(until.Sub(a.cfg.Now()), 0) + 10*time.Millisecond
		} else {
			if n := a.tr.CloseStrangers(); n > 0 {
				a.log.Info("no invite open: closed strangers' connections", "count", n)
			}
			if a.tr.Stats().StrangerConns > 0 {
				wait = strangerRecheck
			}
		}
		timer.Stop()
		var tc <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.inviteWake:
		case <-tc:
		}
	}
}
