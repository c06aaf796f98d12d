package presence

import (
	"context"
	"crypto/ed25519"
	"github.com/kith-project/kith/internal/ratelog"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kith-project/kith/seed"
)

// Presence tracks the addresses and liveness of known devices and keeps
// them informed of ours. Create it with New, start Run, and feed it the
// agent's datagrams with HandleDatagram. It starts no goroutine of its
// own: Run's loop runs on the caller's, and returns when its context ends,
// so there is nothing to close. Its methods are safe for concurrent use.
type Presence struct {
	// Constant after New.
	cfg  Config
	pub  seed.DevicePublic
	log  *slog.Logger
	kick chan struct{} // capacity 1: wakes Run to tell peers of a change

	seq     atomic.Uint64 // the last sequence number sent
	running atomic.Bool
	n       counters
	subs    subscribers

	mu          sync.Mutex // guards the fields below
	rnd         *rand.Rand
	peers       map[seed.DevicePublic]*peerState
	round       []seed.DevicePublic // peers still to heartbeat in this round
	self        selfState
	greet       bool      // the first Step greets every peer
	announce    bool      // our address changed: tell every peer
	nextBeat    time.Time // next random heartbeat
	nextPoll    time.Time // next LocalAddrs poll
	nextSTUN    time.Time // next STUN round
	nextWin     time.Time // next heartbeat aimed at a quiet peer's window
	nextOffline time.Time // when the next online peer goes offline, if nothing comes
	stunTx      map[[12]byte]stunTx
	contacted   map[netip.AddrPort]time.Time // where we sent recently (Admit)
	known       map[netip.AddrPort]bool      // book addresses, cached for Admit
	knownAt     time.Time
	// globalBudget pays the verifications of datagrams that claim a known
	// sender from another address than the book's (see budget.go).
	globalBudget bucket
}

// New makes a Presence. It sends nothing until Run starts.
func New(cfg Config) (*Presence, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	now := cfg.Now()
	p := &Presence{
		cfg: cfg,
		pub: seed.DevicePublic(cfg.Key.Public().(ed25519.PublicKey)),
		// What peers send can cost debug lines: bounded per message.
		log:       slog.New(ratelog.New(cfg.Logger.Handler(), cfg.Now)),
		kick:      make(chan struct{}, 1),
		rnd:       cfg.Rand,
		peers:     map[seed.DevicePublic]*peerState{},
		greet:     true,
		stunTx:    map[[12]byte]stunTx{},
		contacted: map[netip.AddrPort]time.Time{},
	}
	p.self.stun = map[netip.AddrPort]learned{}
	// Sequence numbers start at a random place in every run: receivers
	// resync on an echo (see replayWindow), so no clock is trusted to move
	// forward. Record versions go on from the last one the book saved, or
	// from the clock when it saved none.
	p.seq.Store(randomSeqStart())
	p.self.version = uint64(now.UnixMilli())
	if vb, ok := cfg.Book.(VersionBook); ok {
		p.self.version = max(p.self.version, vb.OwnVersion())
		p.self.saved = vb.OwnVersion()
	}
	p.nextBeat, p.nextPoll, p.nextSTUN = now, now, now
	return p, nil
}

// Run sends heartbeats until ctx ends, then returns nil. On start it
// greets every known peer at once. It returns ErrRunning if it is running
// already. Run is Step in a loop: it sleeps until NextDue, or until a
// packet tells presence to announce a change of our address.
func (p *Presence) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer p.running.Store(false)
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for {
		p.Step(p.cfg.Now())
		d := max(p.NextDue().Sub(p.cfg.Now()), minWait)
		t.Reset(d)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-p.kick:
			t.Stop() // since Go 1.23 a stopped timer's channel holds no stale tick
		}
	}
}

// NextDue returns when Step next has work, by presence's clock
// (Config.Now); a zero time means at once. With Step, it lets a caller
// that keeps its own clock drive presence instead of Run, as the
// simulator in package presencetest does.
func (p *Presence) NextDue() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.greet || p.announce {
		return time.Time{}
	}
	due := p.nextBeat
	for _, t := range []time.Time{p.nextPoll, p.nextSTUN, p.nextWin, p.nextOffline} {
		if !t.IsZero() && t.Before(due) {
			due = t
		}
	}
	return due
}

// wake makes Run step soon.
func (p *Presence) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// interval returns a heartbeat interval, uniform in [T/2, 3T/2].
func (p *Presence) interval() time.Duration {
	t := p.cfg.Interval
	return t/2 + time.Duration(p.rnd.Int64N(int64(t)+1))
}

// Step does whatever is due at now, by presence's clock: poll our
// addresses, greet, announce, heartbeat a random peer, aim at quiet peers'
// windows, ask STUN, and notice peers gone offline. Run calls it; a caller
// that drives presence on its own clock (see NextDue) calls it instead of
// Run, never beside it.
func (p *Presence) Step(now time.Time) {
	p.mu.Lock()
	poll := p.cfg.LocalAddrs != nil && !now.Before(p.nextPoll)
	if poll {
		p.nextPoll = now.Add(min(p.cfg.Interval/4, maxPollEvery))
	} else if p.cfg.LocalAddrs == nil {
		p.nextPoll = time.Time{}
	}
	p.mu.Unlock()
	if poll {
		locals := p.cfg.LocalAddrs()
		p.mu.Lock()
		p.noteLocals(locals, now)
		p.mu.Unlock()
		p.saveVersion()
	}

	p.mu.Lock()
	greet, announce := p.greet, p.announce
	p.greet, p.announce = false, false
	beat := !now.Before(p.nextBeat)
	if beat || greet {
		p.nextBeat = now.Add(p.interval())
	}
	askSTUN := !now.Before(p.nextSTUN) || announce
	if askSTUN {
		p.nextSTUN = now.Add(STUNIntervals * p.cfg.Interval)
	}
	p.pruneLocked(now)
	p.mu.Unlock()

	book := p.cfg.Book.Peers()
	peers := reachable(book)
	switch {
	case announce:
		for _, pi := range peers {
			p.sendBeat(TypeAddrUpdate, pi)
		}
	case greet:
		for _, pi := range peers {
			p.sendBeat(TypeHeartbeat, pi)
		}
	case beat && len(peers) > 0:
		p.mu.Lock()
		pi := p.nextPeerLocked(peers)
		p.mu.Unlock()
		p.sendBeat(TypeHeartbeat, pi)
	}
	p.aimAtWindows(peers, now)
	p.mu.Lock()
	p.checkOnlineLocked(book, now)
	p.mu.Unlock()
	if askSTUN {
		p.askSTUN(peers, now)
	}
}

// pruneLocked forgets old STUN transactions and contacts.
func (p *Presence) pruneLocked(now time.Time) {
	ttl := p.contactTTL()
	for a, t := range p.contacted {
		if now.Sub(t) > ttl {
			delete(p.contacted, a)
		}
	}
	for id, tx := range p.stunTx {
		if now.Sub(tx.at) > ttl {
			delete(p.stunTx, id)
		}
	}
}

// contactTTL is how long an address we sent to stays admitted in quiet
// mode, and how long a STUN transaction waits for its answer.
func (p *Presence) contactTTL() time.Duration {
	return max(OnlineIntervals*p.cfg.Interval, 10*time.Second)
}

// nextSeq returns a fresh sequence number.
func (p *Presence) nextSeq() uint64 { return p.seq.Add(1) }

// send writes pkt to to. If ask, pkt asks for an answer and quiet mode
// admits to for a while (answers themselves open nothing).
func (p *Presence) send(pkt []byte, to netip.AddrPort, ask bool) {
	if ask {
		p.mu.Lock()
		p.contacted[to] = p.cfg.Now()
		p.mu.Unlock()
	}
	if err := p.cfg.Send(pkt, to); err != nil {
		p.n.sendErrors.Add(1)
		p.log.Debug("presence: sending", "to", to, "err", err)
	}
}
