package agent

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
	"golang.org/x/time/rate"
)

// Friends see the roster: on stream protocol 0x05 two devices exchange
// their users' signed rosters (roster/signed.go), one frame each way:
//
//	opener → server  {roster: the opener's user's signed roster, friends, addrs}
//	server → opener  {roster: the server's user's signed roster, friends, addrs}
//	                 or {code, error}: why the opener's frame was refused
//
// Each side merges what it got (roster.OpMerge): a friend's roster adds
// that friend's other devices to the book as friend devices, so that they
// can be reached and authenticated, and its revocations make revoked
// devices unreachable for good. A roster must be the sending device's own
// user's: a friend never tells us about another user's devices.
//
// Between two devices of the same user the frame carries only the user's
// own roster: friends, their rosters and their status reach the other own
// devices through the own cluster (Raft, cluster.go), which also forgets.
//
// A device exchanges with a peer when the peer comes online (presence's
// PeerOnline), when what it would send changed (a pairing, a merge that
// added something, a revocation), and at least every rosterRefresh. An
// exchange with an unchanged frame waits for rosterRefresh; passes are at
// least minRosterPass apart and run at most rosterParallel exchanges at
// once. The server side allows each peer a burst of rosterServeBurst
// exchanges, refilled at rosterServeRate a second.
//
// A revoked device is refused everywhere at the TLS handshake, so it
// cannot ask why. The refusing device answers such a handshake with one
// datagram 0x14 carrying the revocation, signed by the user key; the
// revoked device checks that signature, records its own revocation, and
// says so in its log and in "kith status" (revokedSelf).

// protoRoster is the stream protocol of roster exchanges.
const protoRoster byte = 0x05

// typeRevokedNotice is the datagram that tells a refused device that it
// was revoked: the type byte, then a revocation (seed.RevocationSize).
const typeRevokedNotice byte = 0x14

// Limits of roster exchanges.
const (
	maxFriendRosterFrame = 96 << 10 // a signed roster in JSON, with room
	maxOwnRosterFrame    = 1 << 20
	rosterTimeout        = 10 * time.Second
	rosterRefresh        = 10 * time.Minute
	minRosterPass        = time.Second
	rosterRetry          = 30 * time.Second // after a failed exchange
	rosterParallel       = 4
	rosterServeRate      = 0.2 // per peer per second
	rosterServeBurst     = 5
	maxRosterError       = 200
	noticeEvery          = 10 * time.Second // per address
)

// Refusal codes of roster exchanges.
const (
	rosterBad     = "bad"     // not a well-formed signed roster, or a forged record in it
	rosterForeign = "foreign" // another user's roster
	rosterRate    = "rate"    // too many exchanges
	rosterFailed  = "failed"  // the receiver could not store it
)

// rosterFrame is both frames of an exchange.
type rosterFrame struct {
	Roster []byte `json:"roster,omitempty"`
	Code   string `json:"code,omitempty"`
	Error  string `json:"error,omitempty"`
}

// readRosterFrame reads one frame of at most max bytes.
func readRosterFrame(s *transport.Stream, max int) (rosterFrame, error) {
	b, err := transport.ReadFrame(s, max)
	if err != nil {
		return rosterFrame{}, err
	}
	return decodeRosterFrame(b)
}

// decodeRosterFrame parses a frame and checks its bounds: a roster or a
// refusal, short codes and errors. The signed roster in it is checked
// where it is taken (roster.ParseSigned).
func decodeRosterFrame(b []byte) (rosterFrame, error) {
	var f rosterFrame
	if err := json.Unmarshal(b, &f); err != nil {
		return rosterFrame{}, fmt.Errorf("roster frame: %w", err)
	}
	refused := f.Code != "" || f.Error != ""
	switch {
	case len(f.Code) > 16 || len(f.Error) > maxRosterError:
		return rosterFrame{}, errors.New("roster frame: refusal too long")
	case refused && len(f.Roster) > 0:
		return rosterFrame{}, errors.New("roster frame: a refusal with a roster")
	case !refused && len(f.Roster) == 0:
		return rosterFrame{}, errors.New("roster frame without a roster")
	}
	return f, nil
}

// errRoster is an exchange refused; Code says why.
type errRoster struct{ Code, Reason string }

func (e *errRoster) Error() string { return "roster refused (" + e.Code + "): " + e.Reason }

// rosterSync runs this device's side of roster exchanges.
type rosterSync struct {
	// Constant after newRosterSync.
	a         *Agent
	kick      chan struct{} // wakes run; buffered, one
	noticeOut *rate.Limiter // notices sent, over all addresses
	noticeIn  *rate.Limiter // notices checked

	mu      sync.Mutex
	last    map[seed.DevicePublic]exchanged     // guarded by mu: the last exchange with each peer
	due     map[seed.DevicePublic]bool          // guarded by mu: peers that came online
	busy    map[seed.DevicePublic]bool          // guarded by mu: exchanges under way
	limits  map[seed.DevicePublic]*rate.Limiter // guarded by mu: served exchanges, per peer
	noticed map[netip.AddrPort]time.Time        // guarded by mu: notices sent, per address
	revoked string                              // guarded by mu: why this device is revoked; "" while it is not
	started bool                                // guarded by mu: the first pass ran
}

// exchanged is the last exchange with a peer: the digest of the frame we
// sent, when, and whether it failed.
type exchanged struct {
	digest [32]byte
	at     time.Time
	failed bool
}

func newRosterSync(a *Agent) *rosterSync {
	rs := &rosterSync{
		a:         a,
		kick:      make(chan struct{}, 1),
		noticeOut: rate.NewLimiter(20, 20),
		noticeIn:  rate.NewLimiter(20, 20),
		last:      map[seed.DevicePublic]exchanged{},
		due:       map[seed.DevicePublic]bool{},
		busy:      map[seed.DevicePublic]bool{},
		limits:    map[seed.DevicePublic]*rate.Limiter{},
		noticed:   map[netip.AddrPort]time.Time{},
	}
	if rev, ok := a.book.rosterNow().LocalRevoked(); ok {
		rs.setRevoked(rev)
	}
	return rs
}

// wake asks run for a pass; the book calls it after every roster change.
func (rs *rosterSync) wake() {
	select {
	case rs.kick <- struct{}{}:
	default:
	}
}

// revokedSelf returns why this device is revoked, or "".
func (rs *rosterSync) revokedSelf() string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.revoked
}

// setRevoked records that this device's own user revoked it, and says so
// once.
func (rs *rosterSync) setRevoked(rev seed.Revocation) {
	next := uint32(0)
	r := rs.a.book.rosterNow()
	if s, err := r.SignedOf(r.Self(), rs.a.dev.Identity.Cert); err == nil {
		for _, c := range s.Certs {
			next = max(next, c.Index+1)
		}
		for _, v := range s.Revocations {
			next = max(next, v.Index+1)
		}
	}
	msg := fmt.Sprintf("this device (index %d) was revoked; restore with a new index: kith restore --device %d --force", rev.Index, next)
	rs.mu.Lock()
	first := rs.revoked == ""
	rs.revoked = msg
	rs.mu.Unlock()
	if first {
		rs.a.log.Error(msg, "revoked_at", rev.Revoked)
	}
}

// run is the service that pushes the roster: a pass at start, and one
// after every change, every peer that came online and every
// rosterRefresh/4.
func (rs *rosterSync) run(ctx context.Context) error {
	events, cancel := rs.a.presence.Subscribe(64)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(rosterRefresh / 4)
	defer tick.Stop()
	pass := time.NewTimer(0)
	defer pass.Stop()
	pending, lastPass := true, time.Time{}
	schedule := func() {
		if !pending {
			pending = true
			pass.Reset(max(0, minRosterPass-time.Since(lastPass)))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			if ev.Kind == presence.PeerOnline {
				rs.mu.Lock()
				rs.due[ev.Device] = true
				rs.mu.Unlock()
				schedule()
			}
		case <-rs.kick:
			schedule()
		case <-tick.C:
			schedule()
		case <-pass.C:
			pending, lastPass = false, time.Now()
			rs.pass(ctx, &wg)
		}
	}
}

// pass starts an exchange with every reachable peer that needs one, at
// most rosterParallel at once; the rest wait for the next pass.
func (rs *rosterSync) pass(ctx context.Context, wg *sync.WaitGroup) {
	frames := map[roster.Kind][32]byte{}
	for _, k := range []roster.Kind{roster.KindOwn, roster.KindFriend} {
		raw, err := rs.frameFor(k)
		if err != nil {
			rs.a.log.Warn("building the signed roster", "err", err)
			return
		}
		frames[k] = sha256.Sum256(raw)
	}
	now := time.Now()
	online := rs.a.onlineSet()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	first := !rs.started
	rs.started = true
	running := len(rs.busy)
	for _, p := range rs.a.book.reachable() {
		if running >= rosterParallel {
			rs.wake() // more to do: another pass after this one
			return
		}
		if _, err := netip.ParseAddrPort(p.Addr); err != nil || rs.busy[p.DeviceID] {
			continue // no address yet: its own push, or its heartbeats, tell us
		}
		if !online[p.DeviceID] && !first {
			// Offline: its PeerOnline brings the exchange. Only the
			// first pass dials everyone, so that a device started from
			// an old home hears at once whether it was revoked.
			continue
		}
		l, seen := rs.last[p.DeviceID]
		due := rs.due[p.DeviceID]
		switch {
		case !seen, due && !l.failed:
		case l.failed && now.Sub(l.at) < rosterRetry:
			continue
		case l.digest == frames[p.Kind] && now.Sub(l.at) < rosterRefresh:
			continue
		}
		delete(rs.due, p.DeviceID)
		rs.busy[p.DeviceID] = true
		running++
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := rs.exchangeWith(ctx, p)
			if err != nil && ctx.Err() == nil {
				rs.a.log.Debug("roster exchange", "peer", p.DeviceID.Short(), "err", err)
			}
			rs.mu.Lock()
			delete(rs.busy, p.DeviceID)
			if err != nil {
				rs.last[p.DeviceID] = exchanged{at: time.Now(), failed: true}
			}
			rs.mu.Unlock()
		}()
	}
}

// frameFor returns the frame this device sends to a peer of kind k, in
// its JSON form.
func (rs *rosterSync) frameFor(k roster.Kind) ([]byte, error) {
	r := rs.a.book.rosterNow()
	own, err := r.SignedOf(r.Self(), rs.a.dev.Identity.Cert)
	if err != nil {
		return nil, err
	}
	// Friends and addresses reach the other own devices through the own
	// cluster (Raft), not in this frame.
	return json.Marshal(rosterFrame{Roster: own.Marshal()})
}

func maxFrameOf(k roster.Kind) int {
	if k == roster.KindOwn {
		return maxOwnRosterFrame
	}
	return maxFriendRosterFrame
}

// exchangeWith opens a roster stream to p, sends our frame and takes the
// answer.
func (rs *rosterSync) exchangeWith(ctx context.Context, p Peer) error {
	addr, err := netip.ParseAddrPort(p.Addr)
	if err != nil {
		return fmt.Errorf("no address for %s", p.DeviceID.Short())
	}
	raw, err := rs.frameFor(p.Kind)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, rosterTimeout)
	defer cancel()
	s, err := rs.a.tr.OpenStream(ctx, addr, p.DeviceID.Ed25519(), protoRoster)
	if err != nil {
		return err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(rosterTimeout))
	if err := transport.WriteFrame(s, raw); err != nil {
		return err
	}
	reply, err := readRosterFrame(s, maxFrameOf(p.Kind))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	rs.mu.Lock()
	rs.last[p.DeviceID] = exchanged{digest: sha256.Sum256(raw), at: time.Now()}
	rs.mu.Unlock()
	if reply.Code != "" || reply.Error != "" {
		return &errRoster{Code: clipString(reply.Code, 16), Reason: clipString(reply.Error, maxRosterError)}
	}
	return rs.take(p, reply)
}

// serve answers a roster stream: it takes the opener's frame and answers
// with ours.
func (rs *rosterSync) serve(ctx context.Context, s *transport.Stream) {
	p, ok := rs.a.book.peerForKey(s.Conn().PeerKey())
	if !ok {
		return
	}
	if !rs.allow(p.DeviceID) {
		writeJSON(s, rosterFrame{Code: rosterRate, Error: "too many roster exchanges; try again later"})
		return
	}
	f, err := readRosterFrame(s, maxFrameOf(p.Kind))
	if err != nil {
		writeJSON(s, rosterFrame{Code: rosterBad, Error: clipString(err.Error(), maxRosterError)})
		return
	}
	if err := rs.take(p, f); err != nil {
		rs.a.log.Debug("roster refused", "peer", p.DeviceID.Short(), "err", err)
		var er *errRoster
		if !errors.As(err, &er) {
			er = &errRoster{Code: rosterFailed, Reason: "the roster could not be stored"}
		}
		writeJSON(s, rosterFrame{Code: er.Code, Error: er.Reason})
		return
	}
	raw, err := rs.frameFor(p.Kind)
	if err != nil {
		return
	}
	if transport.WriteFrame(s, raw) == nil {
		rs.mu.Lock()
		rs.last[p.DeviceID] = exchanged{digest: sha256.Sum256(raw), at: time.Now()}
		rs.mu.Unlock()
	}
}

// allow spends one of peer d's served exchanges.
func (rs *rosterSync) allow(d seed.DevicePublic) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	l := rs.limits[d]
	if l == nil {
		if len(rs.limits) > 4096 {
			clear(rs.limits) // every key is a known device: this is only a bound
		}
		l = rate.NewLimiter(rosterServeRate, rosterServeBurst)
		rs.limits[d] = l
	}
	return l.Allow()
}

// take checks and merges the frame f from peer p. It refuses a roster
// that is not p's user's; a refused frame changes nothing.
func (rs *rosterSync) take(p Peer, f rosterFrame) error {
	s, err := roster.ParseSigned(f.Roster)
	if err != nil {
		return &errRoster{Code: rosterBad, Reason: clipString(err.Error(), maxRosterError)}
	}
	if !s.User.Equal(p.UserID) {
		return &errRoster{Code: rosterForeign, Reason: fmt.Sprintf("a roster of user %s from a device of user %s", s.User.Short(), p.UserID.Short())}
	}
	return rs.merge(s, f.Roster, nil)
}

// merge takes the signed roster s (raw is its binary form) into the book,
// with the local records locals of devices it adds; it closes the
// connections of devices it revoked, and notices our own revocation. A
// roster that holds nothing new writes nothing.
func (rs *rosterSync) merge(s roster.Signed, raw []byte, locals []Local) error {
	a := rs.a
	before := a.book.rosterNow()
	held, err := before.SignedOf(s.User, a.dev.Identity.Cert)
	if err == nil && held.Digest() == s.Digest() && len(locals) == 0 {
		return nil
	}
	if err := a.book.change(roster.Change{Op: roster.OpMerge, Roster: raw}, locals, nil); err != nil {
		return fmt.Errorf("merging the roster of user %s: %w", s.User.Short(), err)
	}
	after := a.book.rosterNow()
	var gone []seed.DevicePublic
	for _, rev := range s.Revocations {
		if after.Revoked(rev.Device) && !before.Revoked(rev.Device) {
			gone = append(gone, rev.Device)
			a.log.Info("device revoked", "user", s.User.Short(), "device", rev.Device.Short(), "index", rev.Index)
		}
	}
	a.closeDevices(gone)
	if rev, ok := after.LocalRevoked(); ok {
		rs.setRevoked(rev)
	}
	return nil
}

// noticeRevoked answers a refused handshake of a revoked device with its
// revocation, at most once per address every noticeEvery.
func (rs *rosterSync) noticeRevoked(d seed.DevicePublic, to netip.AddrPort) {
	rev, ok := rs.a.book.rosterNow().Revocation(d)
	if !ok || !to.IsValid() {
		return
	}
	now := time.Now()
	rs.mu.Lock()
	if t, ok := rs.noticed[to]; ok && now.Sub(t) < noticeEvery {
		rs.mu.Unlock()
		return
	}
	if len(rs.noticed) > 1024 {
		clear(rs.noticed)
	}
	rs.noticed[to] = now
	rs.mu.Unlock()
	if !rs.noticeOut.Allow() {
		return
	}
	pkt := append([]byte{typeRevokedNotice}, rev.Marshal()...)
	if err := rs.a.tr.WriteDatagram(pkt, to); err != nil {
		rs.a.log.Debug("telling a revoked device", "err", err)
	}
}

// handleNotice takes a revocation notice: if it is our own user's
// revocation of this very device, the device records it and says so.
// Anything else is dropped.
func (rs *rosterSync) handleNotice(pkt []byte) {
	if len(pkt) != 1+seed.RevocationSize || rs.revokedSelf() != "" || !rs.noticeIn.Allow() {
		return
	}
	rev, err := seed.ParseRevocation(pkt[1:])
	if err != nil || !rev.User.Equal(rs.a.dev.Cert.User) || !rev.Device.Equal(rs.a.dev.Cert.Device) {
		return
	}
	// Applied here only: a revoked device proposes nothing to the cluster
	// that no longer counts it.
	if err := rs.a.book.apply(roster.Change{Op: roster.OpRevoke, Revocation: pkt[1:]}, nil, nil); err != nil {
		rs.a.log.Warn("recording this device's revocation", "err", err)
	}
	rs.setRevoked(rev)
}

// clipString bounds a peer's string and keeps only printable ASCII.
func clipString(s string, n int) string {
	b := make([]byte, 0, min(len(s), n))
	for i := 0; i < len(s) && len(b) < n; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			b = append(b, c)
		}
	}
	return string(b)
}
