package presence

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Kinds of peer, as PeerInfo.Kind spells them.
const (
	KindOwn    = "own"    // another device of this user
	KindFriend = "friend" // a device of a friend
)

// PeerInfo is a known device as the address book holds it.
type PeerInfo struct {
	// Device is the peer device's public key, its ID.
	Device ed25519.PublicKey
	// Kind is KindOwn or KindFriend.
	Kind string
	// Addr is the last known address; the zero value if none.
	Addr netip.AddrPort
	// Version is the version of the newest address record applied for this
	// device, as last passed to Book.SetAddr (0 if none). It keeps a
	// restarted agent from taking an older record again.
	Version uint64
	// Window is the peer user's 32-byte window secret (for quiet mode); nil
	// if unknown. For own devices it is our own user's.
	Window []byte
}

// Book is the agent's address book, as presence sees it. The agent
// implements it. Its methods must be cheap and safe for concurrent use, and
// must not call back into the Presence.
type Book interface {
	// Lookup returns the device with key device if it is known and not
	// blocked.
	Lookup(device ed25519.PublicKey) (PeerInfo, bool)
	// Peers returns every known device that is not blocked.
	Peers() []PeerInfo
	// SetAddr persists a new address for device, and version as the
	// version of the record it came from (unchanged when the address comes
	// from an authenticated packet rather than a record).
	SetAddr(device ed25519.PublicKey, addr netip.AddrPort, version uint64) error
}

// Defaults and limits.
const (
	// DefaultInterval is T, the mean time between two heartbeats.
	DefaultInterval = 15 * time.Second
	// MaxClockSkew is how far a heartbeat's send time may be from the
	// receiver's clock, corrected by the measured offset, before the
	// heartbeat is refused as stale.
	MaxClockSkew = 2 * time.Minute
	// OnlineIntervals: a peer is online while its last authenticated
	// packet is at most this many rounds of heartbeats old (a round is n
	// intervals T with n peers; see PeerStatus.Online).
	OnlineIntervals = 3
	// STUNIntervals: we ask for our public address every this many T, and
	// at once when our address changed.
	STUNIntervals = 10

	maxPending   = 8                // heartbeats awaiting a reply, per peer
	maxSamples   = 8                // clock samples kept per peer
	maxPollEvery = 5 * time.Second  // LocalAddrs is polled at least this often
	minWait      = time.Millisecond // Run never spins faster than this
)

// Config configures a Presence. Key, Book and Send are required; every
// other zero value means its default.
type Config struct {
	// Key is this device's signing key.
	Key ed25519.PrivateKey
	// Interval is T: heartbeats go at uniform random intervals in
	// [T/2, 3T/2]. Default DefaultInterval.
	Interval time.Duration
	// Book is the agent's address book.
	Book Book
	// Send writes one datagram to the agent's UDP socket. It must not block
	// for long, and must not call back into the Presence synchronously.
	Send func(pkt []byte, to netip.AddrPort) error
	// Now is the agent's clock. Default time.Now.
	Now func() time.Time
	// Rand chooses intervals and peers. Default: seeded from crypto/rand.
	Rand *rand.Rand
	// LocalAddrs returns this device's interface addresses with its port.
	// It is polled every heartbeat and at least every T/4 (at most 5 s) to
	// notice changes. Nil means unknown: only peers and STUN then tell us
	// our address.
	LocalAddrs func() []netip.AddrPort
	// STUNServers are the STUN servers to ask for our public address (kith
	// run --stun).
	STUNServers []netip.AddrPort
	// Window is our own user's window secret, needed by Quiet.
	Window []byte
	// Quiet drops packets from unknown addresses outside our windows.
	Quiet bool
	// Logger receives debug logs. Default: discard.
	Logger *slog.Logger
}

// Errors.
var (
	// ErrInvalidConfig: New was given a config it cannot run with.
	ErrInvalidConfig = errors.New("presence: invalid presence config")
	// ErrRunning: Run was called while it was already running.
	ErrRunning = errors.New("presence: presence is already running")
)

func (c *Config) setDefaults() error {
	if len(c.Key) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: the device key is %d bytes, want an ed25519 private key of %d", ErrInvalidConfig, len(c.Key), ed25519.PrivateKeySize)
	}
	if c.Book == nil || c.Send == nil {
		return fmt.Errorf("%w: Book and Send are required", ErrInvalidConfig)
	}
	if c.Quiet && len(c.Window) == 0 {
		return fmt.Errorf("%w: quiet mode needs the user's window secret (Config.Window)", ErrInvalidConfig)
	}
	for _, s := range c.STUNServers {
		if !validAddr(s) {
			return fmt.Errorf("%w: STUN server %q is not a host:port address", ErrInvalidConfig, s)
		}
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		var seed [32]byte
		crand.Read(seed[:])
		c.Rand = rand.New(rand.NewChaCha8(seed))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// PeerStatus is what presence knows about one peer.
type PeerStatus struct {
	Device ed25519.PublicKey
	Kind   string
	// Addr is the address the book holds.
	Addr netip.AddrPort
	// LastSeen is when the last authenticated packet came (zero: not since
	// this Presence started).
	LastSeen time.Time
	// Online: LastSeen is at most OnlineIntervals·T·n ago, with n peers
	// (each hears from us once per round of n heartbeats), and no two
	// heartbeats sent since went unanswered.
	Online bool
	// RTT is the smoothed round-trip time, ClockOffset the peer's clock
	// minus ours; both valid only if HaveRTT.
	RTT         time.Duration
	ClockOffset time.Duration
	HaveRTT     bool
}

// Stats counts what presence did since New.
type Stats struct {
	HeartbeatsSent uint64 // heartbeats, greetings included
	UpdatesSent    uint64 // address updates
	RepliesSent    uint64
	Accepted       uint64 // datagrams that authenticated and were fresh
	// Unknown counts datagrams from senders the book does not know (or
	// blocks), dropped before any signature check.
	Unknown      uint64
	Malformed    uint64
	BadSignature uint64 // datagrams and records whose signature failed
	Replayed     uint64 // sequence number seen before, or too old
	Stale        uint64 // send time outside MaxClockSkew (answered, not believed)
	Unsolicited  uint64 // replies to no heartbeat of ours
	// SignatureChecks counts ed25519 verifications, datagrams and records.
	SignatureChecks uint64
	RecordsApplied  uint64
	RecordsIgnored  uint64 // unknown device, not newer, or forged
	STUNAnswered    uint64
	STUNMapped      uint64 // answers to our own STUN requests
	SendErrors      uint64
}

type counters struct {
	hbSent, updSent, repSent, accepted, unknown, malformed, badSig, replayed,
	stale, unsolicited, sigChecks, recApplied, recIgnored, stunAnswered,
	stunMapped, sendErrors atomic.Uint64
}

// Presence tracks the addresses and liveness of known devices and keeps
// them informed of ours. Create it with New, start Run, and feed it the
// agent's datagrams with HandleDatagram. It starts no goroutine of its
// own: Run's loop runs on the caller's, and returns when its context ends,
// so there is nothing to close. Its methods are safe for concurrent use.
type Presence struct {
	// Constant after New.
	cfg  Config
	pub  ed25519.PublicKey
	log  *slog.Logger
	kick chan struct{} // capacity 1: wakes Run to tell peers of a change

	seq     atomic.Uint64 // the last sequence number sent
	running atomic.Bool
	n       counters

	mu        sync.Mutex // guards the fields below
	rnd       *rand.Rand
	peers     map[[keySize]byte]*peerState
	round     [][keySize]byte // peers still to heartbeat in this round
	self      selfState
	greet     bool      // the first fire greets every peer
	announce  bool      // our address changed: tell every peer
	nextBeat  time.Time // next random heartbeat
	nextPoll  time.Time // next LocalAddrs poll
	nextSTUN  time.Time // next STUN round
	nextWin   time.Time // next heartbeat aimed at a quiet peer's window
	stunTx    map[[12]byte]stunTx
	contacted map[netip.AddrPort]time.Time // where we sent recently (Admit)
	known     map[netip.AddrPort]bool      // book addresses, cached for Admit
	knownAt   time.Time
}

// peerState is what presence keeps in memory about one peer. Guarded by
// Presence.mu.
type peerState struct {
	replay   replayWindow
	lastSeen time.Time
	version  uint64 // newest record version held
	record   []byte // that record's signed bytes, for gossip
	kind     string // the record's device kind, for gossip
	pending  []pendingBeat
	samples  []sample
	rtt      time.Duration // smoothed
	offset   time.Duration // from the sample with the lowest RTT
	haveRTT  bool
	observed learned   // our address as this peer last reported it
	windowAt time.Time // start of the peer's last window we aimed at
}

type pendingBeat struct {
	seq uint64
	t1  int64
}

type sample struct {
	rtt, offset time.Duration
}

type learned struct {
	addr netip.AddrPort
	at   time.Time
}

// selfState is what we know of our own address. Guarded by Presence.mu.
type selfState struct {
	polled   bool
	locals   []netip.AddrPort // sorted
	localsAt time.Time        // when locals last changed
	public   netip.AddrPort   // latest evidence from STUN or peers
	publicAt time.Time
	addr     netip.AddrPort // advertised in our record
	version  uint64
	record   []byte
	stun     map[netip.AddrPort]learned // mapped address, by server
}

type stunTx struct {
	to netip.AddrPort
	at time.Time
}

// New makes a Presence. It sends nothing until Run starts.
func New(cfg Config) (*Presence, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	now := cfg.Now()
	p := &Presence{
		cfg:       cfg,
		pub:       cfg.Key.Public().(ed25519.PublicKey),
		log:       cfg.Logger,
		kick:      make(chan struct{}, 1),
		rnd:       cfg.Rand,
		peers:     map[[keySize]byte]*peerState{},
		greet:     true,
		stunTx:    map[[12]byte]stunTx{},
		contacted: map[netip.AddrPort]time.Time{},
	}
	p.self.stun = map[netip.AddrPort]learned{}
	// Sequence numbers and record versions start from the clock, so that
	// they keep increasing across restarts.
	p.seq.Store(uint64(now.UnixNano()))
	p.self.version = uint64(now.UnixMilli())
	p.nextBeat, p.nextPoll, p.nextSTUN = now, now, now
	return p, nil
}

// Run sends heartbeats until ctx ends, then returns nil. On start it
// greets every known peer at once. It returns ErrRunning if it is running
// already.
func (p *Presence) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer p.running.Store(false)
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for {
		p.fire(p.cfg.Now())
		d := max(p.nextDue().Sub(p.cfg.Now()), minWait)
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

// nextDue is when fire next has work, by our clock.
func (p *Presence) nextDue() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.greet || p.announce {
		return time.Time{}
	}
	due := p.nextBeat
	for _, t := range []time.Time{p.nextPoll, p.nextSTUN, p.nextWin} {
		if !t.IsZero() && t.Before(due) {
			due = t
		}
	}
	return due
}

// wake makes Run fire soon.
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

// fire does whatever is due at now: poll our addresses, greet, announce,
// heartbeat a random peer, aim at quiet peers' windows, ask STUN.
func (p *Presence) fire(now time.Time) {
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

	peers := reachable(p.cfg.Book.Peers())
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
	if askSTUN {
		p.askSTUN(peers, now)
	}
}

// nextPeerLocked picks the peer for the next heartbeat, uniformly at
// random among those not yet picked in this round: the rounds are random
// permutations of the peers, so that every peer hears from us at least
// once every 2n−1 heartbeats and none is left out by chance.
func (p *Presence) nextPeerLocked(peers []PeerInfo) PeerInfo {
	byKey := make(map[[keySize]byte]PeerInfo, len(peers))
	for _, pi := range peers {
		byKey[[keySize]byte(pi.Device)] = pi
	}
	if len(byKey) == 0 {
		return PeerInfo{}
	}
	for {
		for len(p.round) > 0 {
			k := p.round[0]
			p.round = p.round[1:]
			if pi, ok := byKey[k]; ok {
				return pi
			}
		}
		for k := range byKey {
			p.round = append(p.round, k)
		}
		slices.SortFunc(p.round, func(a, b [keySize]byte) int { return slices.Compare(a[:], b[:]) })
		p.rnd.Shuffle(len(p.round), func(i, j int) { p.round[i], p.round[j] = p.round[j], p.round[i] })
	}
}

// reachable keeps the peers we can send to.
func reachable(peers []PeerInfo) []PeerInfo {
	out := peers[:0:0]
	for _, pi := range peers {
		if len(pi.Device) == keySize && validAddr(pi.Addr) {
			out = append(out, pi)
		}
	}
	return out
}

// aimAtWindows heartbeats the peers that seem gone and whose window secret
// we hold in the middle of their next window, by their clock as we
// measured it, so that a quiet peer lets us in from an address it does
// not know. It sets nextWin to the next such moment.
func (p *Presence) aimAtWindows(peers []PeerInfo, now time.Time) {
	var due []PeerInfo
	p.mu.Lock()
	p.nextWin = time.Time{}
	for _, pi := range peers {
		if len(pi.Window) == 0 {
			continue
		}
		ps := p.peer(pi.Device)
		if p.onlineLocked(ps, now, len(peers)) {
			continue
		}
		theirs := now.Add(ps.offset)
		start, end := NextWindow(pi.Window, theirs)
		if !ps.windowAt.IsZero() && !start.After(ps.windowAt) {
			start, end = NextWindow(pi.Window, end) // this one is done
		}
		aim := start.Add(WindowLength / 2)
		if !theirs.Before(aim) && theirs.Before(end) {
			ps.windowAt = start
			due = append(due, pi)
			start, _ = NextWindow(pi.Window, end)
			aim = start.Add(WindowLength / 2)
		}
		at := aim.Add(-ps.offset) // back to our clock
		if p.nextWin.IsZero() || at.Before(p.nextWin) {
			p.nextWin = at
		}
	}
	p.mu.Unlock()
	for _, pi := range due {
		p.sendBeat(TypeHeartbeat, pi)
	}
}

// peer returns the state for device, making it if needed. Call with mu
// held, with a 32-byte key.
func (p *Presence) peer(device ed25519.PublicKey) *peerState {
	k := [keySize]byte(device)
	ps, ok := p.peers[k]
	if !ok {
		ps = &peerState{}
		p.peers[k] = ps
	}
	return ps
}

// onlineLocked reports whether ps is online among n peers: its last
// authenticated packet is at most OnlineIntervals·T·n old (each peer hears
// from us at least once every 2n−1 heartbeats, see nextPeerLocked), and
// the heartbeats we sent it since have not gone unanswered twice.
func (p *Presence) onlineLocked(ps *peerState, now time.Time, n int) bool {
	if ps.lastSeen.IsZero() || now.Sub(ps.lastSeen) > OnlineIntervals*p.cfg.Interval*time.Duration(max(n, 1)) {
		return false
	}
	grace := max(p.cfg.Interval/2, 2*time.Second)
	missed := 0
	for _, b := range ps.pending {
		sent := time.Unix(0, b.t1)
		if sent.After(ps.lastSeen) && now.Sub(sent) > grace {
			missed++
		}
	}
	return missed < 2
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

// sendBeat sends a heartbeat or address update to pi.
func (p *Presence) sendBeat(typ byte, pi PeerInfo) {
	seq := p.nextSeq()
	t1 := p.cfg.Now().UnixNano()
	p.mu.Lock()
	recs := p.gossipLocked(pi)
	ps := p.peer(pi.Device)
	ps.pending = append(ps.pending, pendingBeat{seq: seq, t1: t1})
	if len(ps.pending) > maxPending {
		ps.pending = ps.pending[len(ps.pending)-maxPending:]
	}
	p.mu.Unlock()
	pkt := encodeBeat(typ, p.cfg.Key, pi.Device, seq, t1, recs)
	if typ == TypeAddrUpdate {
		p.n.updSent.Add(1)
	} else {
		p.n.hbSent.Add(1)
	}
	p.send(pkt, pi.Addr, true)
}

// gossipLocked picks the records to send to pi: our own, then up to two
// we hold for other devices. A friend is told only about our own devices,
// so that friends do not learn each other's addresses through us.
func (p *Presence) gossipLocked(to PeerInfo) [][]byte {
	var out [][]byte
	if p.self.record != nil {
		out = append(out, p.self.record)
	}
	var cand [][]byte
	for k, ps := range p.peers {
		if ps.record == nil || subtle.ConstantTimeCompare(k[:], to.Device) == 1 {
			continue
		}
		if to.Kind != KindOwn && ps.kind != KindOwn {
			continue
		}
		cand = append(cand, ps.record)
	}
	p.rnd.Shuffle(len(cand), func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
	for _, r := range cand {
		if len(out) == maxRecords {
			break
		}
		out = append(out, r)
	}
	return out
}

// HandleDatagram handles one datagram from the agent's socket: a
// heartbeat, an address update, a reply, or a STUN message. It does not
// keep pkt. Anything malformed, unknown, forged, replayed or stale is
// dropped (and counted in Stats); a stale heartbeat is still answered,
// without being believed, so that its sender can measure our clock.
func (p *Presence) HandleDatagram(pkt []byte, from netip.AddrPort) {
	if len(pkt) == 0 || !from.IsValid() {
		return
	}
	from = normAddr(from)
	if pkt[0] <= 0x03 {
		p.handleSTUN(pkt, from)
		return
	}
	p.handleKith(pkt, from)
}

func (p *Presence) handleKith(pkt []byte, from netip.AddrPort) {
	now := p.cfg.Now()
	pk, err := decodePacket(pkt)
	if err != nil {
		p.n.malformed.Add(1)
		p.log.Debug("presence: dropping datagram", "from", from, "err", err)
		return
	}
	// No work for strangers: look the sender up before any signature.
	info, ok := p.cfg.Book.Lookup(pk.sender)
	if !ok || len(info.Device) != keySize || subtle.ConstantTimeCompare(pk.sender, p.pub) == 1 {
		p.n.unknown.Add(1)
		return
	}
	p.n.sigChecks.Add(1)
	if !verifyPacket(pk, p.pub) {
		p.n.badSig.Add(1)
		p.log.Debug("presence: bad signature", "from", from, "device", short(pk.sender))
		return
	}

	p.mu.Lock()
	ps := p.peer(pk.sender)
	if !ps.replay.check(pk.seq) {
		p.mu.Unlock()
		p.n.replayed.Add(1)
		return
	}
	var (
		stale    bool
		observed bool // a reply told us how we are seen
	)
	if pk.typ == TypeHeartbeatReply {
		// The echo of a heartbeat we sent, once, proves a reply fresh:
		// no clock is needed, so a skewed peer can still be measured.
		i := slices.IndexFunc(ps.pending, func(b pendingBeat) bool { return b.seq == pk.echoSeq && b.t1 == pk.t1 })
		if i < 0 {
			p.mu.Unlock()
			p.n.unsolicited.Add(1)
			return
		}
		ps.pending = slices.Delete(ps.pending, i, i+1)
		p.measureLocked(ps, pk, now)
		observed = true
	} else {
		skew := time.Duration(pk.t1-now.UnixNano()) - ps.offset
		stale = skew > MaxClockSkew || skew < -MaxClockSkew
	}
	ps.replay.accept(pk.seq)
	if stale {
		p.mu.Unlock()
		p.n.stale.Add(1)
		p.log.Debug("presence: stale heartbeat, answering without believing it", "from", from, "device", short(pk.sender))
		p.reply(info, pk, now, from)
		return
	}
	p.n.accepted.Add(1)
	ps.lastSeen = now
	version := max(ps.version, info.Version)
	if observed {
		p.noteObservedLocked(ps, pk.seen, now)
	}
	p.mu.Unlock()

	if from != info.Addr {
		// An authenticated packet from a new address moves the peer at
		// once, as WireGuard roams.
		p.log.Debug("presence: peer moved", "device", short(pk.sender), "from", info.Addr, "to", from)
		p.setAddr(info.Device, from, version)
	}
	p.applyRecords(pk, from)
	if pk.typ != TypeHeartbeatReply {
		p.reply(info, pk, now, from)
	}
	p.mu.Lock()
	announce := p.announce
	p.mu.Unlock()
	if announce {
		p.wake()
	}
}

// measureLocked takes a clock sample from a reply received at t4.
func (p *Presence) measureLocked(ps *peerState, pk packet, t4 time.Time) {
	t1, t2, t3, t4n := pk.t1, pk.t2, pk.t3, t4.UnixNano()
	rtt := time.Duration((t4n - t1) - (t3 - t2))
	if rtt < 0 || t3 < t2 {
		return // impossible times: nothing to learn
	}
	s := sample{rtt: rtt, offset: time.Duration(((t2 - t1) + (t3 - t4n)) / 2)}
	ps.samples = append(ps.samples, s)
	if len(ps.samples) > maxSamples {
		ps.samples = ps.samples[1:]
	}
	// As NTP's clock filter does, trust the offset of the sample that
	// spent the least time on the way: its error is at most half its RTT.
	best := ps.samples[0]
	for _, x := range ps.samples[1:] {
		if x.rtt < best.rtt {
			best = x
		}
	}
	ps.offset = best.offset
	if !ps.haveRTT {
		ps.rtt = rtt
	} else {
		ps.rtt += (rtt - ps.rtt) / 8 // as TCP's SRTT
	}
	ps.haveRTT = true
}

// reply answers the heartbeat hb from pi, received at t2 from from.
func (p *Presence) reply(pi PeerInfo, hb packet, t2 time.Time, from netip.AddrPort) {
	seq := p.nextSeq()
	p.mu.Lock()
	recs := p.gossipLocked(pi)
	p.mu.Unlock()
	t3 := p.cfg.Now()
	pkt := encodeReply(p.cfg.Key, pi.Device, seq, hb, t2.UnixNano(), t3.UnixNano(), from, recs)
	p.n.repSent.Add(1)
	p.send(pkt, from, false)
}

// applyRecords takes the address records of the authenticated packet pk,
// received from from. A record moves a device only if that device signed
// it and its version is newer than the one held.
func (p *Presence) applyRecords(pk packet, from netip.AddrPort) {
	for _, r := range pk.records {
		if subtle.ConstantTimeCompare(r.device, p.pub) == 1 {
			continue // about us: we know better
		}
		info, ok := p.cfg.Book.Lookup(r.device)
		if !ok || len(info.Device) != keySize {
			p.n.recIgnored.Add(1)
			continue
		}
		p.mu.Lock()
		held := max(p.peer(r.device).version, info.Version)
		p.mu.Unlock()
		if r.version <= held {
			p.n.recIgnored.Add(1)
			continue
		}
		p.n.sigChecks.Add(1)
		if !verifyRecord(r) {
			p.n.badSig.Add(1)
			p.n.recIgnored.Add(1)
			p.log.Debug("presence: forged address record", "device", short(r.device), "carried by", short(pk.sender))
			continue
		}
		p.mu.Lock()
		ps := p.peer(r.device)
		if r.version <= ps.version {
			p.mu.Unlock()
			p.n.recIgnored.Add(1)
			continue
		}
		ps.version, ps.record, ps.kind = r.version, r.raw, info.Kind
		p.mu.Unlock()
		addr := r.addr
		if subtle.ConstantTimeCompare(r.device, pk.sender) == 1 {
			// The sender's own record: where its packet came from is
			// better evidence than where it thinks it is.
			addr = from
		}
		p.n.recApplied.Add(1)
		p.setAddr(info.Device, addr, r.version)
	}
}

// setAddr persists a peer's address through the book.
func (p *Presence) setAddr(device ed25519.PublicKey, addr netip.AddrPort, version uint64) {
	if err := p.cfg.Book.SetAddr(device, addr, version); err != nil {
		p.log.Warn("presence: saving a peer's address", "device", short(device), "addr", addr, "err", err)
	}
	p.mu.Lock()
	p.knownAt = time.Time{} // the Admit cache is out of date
	p.mu.Unlock()
}

// Observed tells presence that an authenticated connection from the known
// device came from from. If that is a new address, the device moves there
// at once (WireGuard-style roaming). The agent calls it for every
// authenticated QUIC connection.
func (p *Presence) Observed(device ed25519.PublicKey, from netip.AddrPort) {
	if !validAddr(normAddr(from)) {
		return
	}
	from = normAddr(from)
	info, ok := p.cfg.Book.Lookup(device)
	if !ok || len(info.Device) != keySize {
		return
	}
	p.mu.Lock()
	ps := p.peer(info.Device)
	ps.lastSeen = p.cfg.Now()
	version := max(ps.version, info.Version)
	p.mu.Unlock()
	if from != info.Addr {
		p.setAddr(info.Device, from, version)
	}
}

// Admit decides whether a packet from from should be read at all; false
// means drop it without answer. It is meant for the transport's
// DropSource, and is cheap. Outside quiet mode it admits everything (the
// datagram handlers drop strangers themselves). In quiet mode it admits
// the known peers' addresses, addresses we sent to in the last
// OnlineIntervals·T (at least 10 s: answers from STUN servers and peers),
// and any address while one of our windows is open.
func (p *Presence) Admit(from netip.AddrPort, quic bool) bool {
	if !p.cfg.Quiet {
		return true
	}
	from = normAddr(from)
	now := p.cfg.Now()
	p.mu.Lock()
	fresh := p.known != nil && now.Sub(p.knownAt) < time.Second && !now.Before(p.knownAt)
	p.mu.Unlock()
	if !fresh {
		known := map[netip.AddrPort]bool{}
		for _, pi := range p.cfg.Book.Peers() {
			if pi.Addr.IsValid() {
				known[normAddr(pi.Addr)] = true
			}
		}
		p.mu.Lock()
		p.known, p.knownAt = known, now
		p.mu.Unlock()
	}
	p.mu.Lock()
	ok := p.known[from]
	if t, sent := p.contacted[from]; sent && now.Sub(t) <= p.contactTTL() {
		ok = true
	}
	p.mu.Unlock()
	return ok || WindowOpen(p.cfg.Window, now)
}

// Status returns every known peer's presence, sorted by device key.
func (p *Presence) Status() []PeerStatus {
	peers := p.cfg.Book.Peers()
	now := p.cfg.Now()
	out := make([]PeerStatus, 0, len(peers))
	p.mu.Lock()
	for _, pi := range peers {
		if len(pi.Device) != keySize {
			continue
		}
		st := PeerStatus{Device: pi.Device, Kind: pi.Kind, Addr: pi.Addr}
		if ps, ok := p.peers[[keySize]byte(pi.Device)]; ok {
			st.LastSeen = ps.lastSeen
			st.Online = p.onlineLocked(ps, now, len(peers))
			st.RTT, st.ClockOffset, st.HaveRTT = ps.rtt, ps.offset, ps.haveRTT
		}
		out = append(out, st)
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b PeerStatus) int { return slices.Compare(a.Device, b.Device) })
	return out
}

// PublicAddrs returns the addresses we were recently seen at, learned from
// STUN and from what peers observed, sorted.
func (p *Presence) PublicAddrs() []netip.AddrPort {
	now := p.cfg.Now()
	ttl := 3 * STUNIntervals * p.cfg.Interval
	var out []netip.AddrPort
	p.mu.Lock()
	for _, l := range p.self.stun {
		if now.Sub(l.at) <= ttl {
			out = append(out, l.addr)
		}
	}
	for _, ps := range p.peers {
		if l := ps.observed; l.addr.IsValid() && now.Sub(l.at) <= ttl {
			out = append(out, l.addr)
		}
	}
	p.mu.Unlock()
	slices.SortFunc(out, netip.AddrPort.Compare)
	return slices.Compact(out)
}

// Stats returns the counters.
func (p *Presence) Stats() Stats {
	n := &p.n
	return Stats{
		HeartbeatsSent: n.hbSent.Load(), UpdatesSent: n.updSent.Load(), RepliesSent: n.repSent.Load(),
		Accepted: n.accepted.Load(), Unknown: n.unknown.Load(), Malformed: n.malformed.Load(),
		BadSignature: n.badSig.Load(), Replayed: n.replayed.Load(), Stale: n.stale.Load(),
		Unsolicited: n.unsolicited.Load(), SignatureChecks: n.sigChecks.Load(),
		RecordsApplied: n.recApplied.Load(), RecordsIgnored: n.recIgnored.Load(),
		STUNAnswered: n.stunAnswered.Load(), STUNMapped: n.stunMapped.Load(), SendErrors: n.sendErrors.Load(),
	}
}

// short names a device in logs: the first bytes of its public key.
func short(pub []byte) string {
	if len(pub) > 6 {
		pub = pub[:6]
	}
	return hex.EncodeToString(pub)
}

// ---- our own address ----

// noteLocals takes a LocalAddrs poll. A change after the first poll is a
// change of our address. Call with mu held.
func (p *Presence) noteLocals(locals []netip.AddrPort, now time.Time) {
	norm := make([]netip.AddrPort, 0, len(locals))
	for _, a := range locals {
		if a.IsValid() {
			norm = append(norm, normAddr(a))
		}
	}
	slices.SortFunc(norm, netip.AddrPort.Compare)
	norm = slices.Compact(norm)
	if p.self.polled && slices.Equal(norm, p.self.locals) {
		return
	}
	first := !p.self.polled
	p.self.polled, p.self.locals, p.self.localsAt = true, norm, now
	if !first {
		p.log.Debug("presence: our interface addresses changed", "addrs", norm)
		p.announce = true
	}
	p.updateOwnRecordLocked(now)
}

// isLocalLocked reports whether a is one of our interface addresses.
func (p *Presence) isLocalLocked(a netip.AddrPort) bool {
	_, ok := slices.BinarySearchFunc(p.self.locals, a, netip.AddrPort.Compare)
	return ok
}

// noteObservedLocked takes the address a peer saw us at. Several peers may
// see several addresses (behind some NATs each peer sees another port), so
// only a change in what one peer sees is a change of our address. An
// address that is one of our interfaces' is no news.
func (p *Presence) noteObservedLocked(ps *peerState, seen netip.AddrPort, now time.Time) {
	prev := ps.observed.addr
	ps.observed = learned{addr: seen, at: now}
	p.noteEvidenceLocked(prev, seen, now)
}

// noteEvidenceLocked takes a report of our public address, seen, where
// the same source reported prev before.
func (p *Presence) noteEvidenceLocked(prev, seen netip.AddrPort, now time.Time) {
	if p.cfg.LocalAddrs != nil && p.isLocalLocked(seen) {
		return
	}
	changed := prev.IsValid() && prev != seen
	if !changed && p.self.public == seen {
		return
	}
	p.self.public, p.self.publicAt = seen, now
	if changed {
		p.log.Debug("presence: our public address changed", "from", prev, "to", seen)
		p.announce = true
	}
	p.updateOwnRecordLocked(now)
}

// updateOwnRecordLocked signs a new record if the address we should
// advertise changed: the newest evidence of a public address unless our
// interfaces changed since, else our best interface address.
func (p *Presence) updateOwnRecordLocked(now time.Time) {
	addr := bestLocal(p.self.locals)
	if p.self.public.IsValid() && (!addr.IsValid() || !p.self.publicAt.Before(p.self.localsAt)) {
		addr = p.self.public
	}
	if !validAddr(addr) || (addr == p.self.addr && p.self.record != nil) {
		return
	}
	// A device that had a routable address and is left with loopback only
	// is between two networks (or between "ip addr del" and "add"): it keeps
	// advertising the routable address rather than one no peer can use.
	if addr.Addr().IsLoopback() && p.self.record != nil && !p.self.addr.Addr().IsLoopback() {
		return
	}
	p.self.version = max(p.self.version+1, uint64(now.UnixMilli()))
	p.self.addr = addr
	p.self.record = signRecord(p.cfg.Key, addr, p.self.version)
}

// bestLocal picks the interface address to advertise: a routable one
// first, IPv4 before IPv6, then loopback. Link-local addresses need a zone
// and are never advertised.
func bestLocal(locals []netip.AddrPort) netip.AddrPort {
	rank := func(a netip.AddrPort) int {
		ip := a.Addr()
		switch {
		case !validAddr(a) || ip.IsLinkLocalUnicast() || ip.IsMulticast():
			return -1
		case ip.IsLoopback():
			return 2
		case ip.Is4():
			return 0
		default:
			return 1
		}
	}
	var best netip.AddrPort
	bestRank := -1
	for _, a := range locals {
		if r := rank(a); r >= 0 && (bestRank < 0 || r < bestRank) {
			best, bestRank = a, r
		}
	}
	return best
}

// OwnRecord returns the address we advertise and its record version; a
// zero address if we know none yet.
func (p *Presence) OwnRecord() (netip.AddrPort, uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.self.record == nil {
		return netip.AddrPort{}, 0
	}
	return p.self.addr, p.self.version
}
