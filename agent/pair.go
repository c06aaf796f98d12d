package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/pairing"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// maxPairFrame bounds a pairing message.
const maxPairFrame = 64 << 10

// pairer runs this device's side of pairings: the invites it shows and the
// codes its user scans.
type pairer struct {
	// Constant after newPairer.
	a *Agent
	// dialHook, set only by tests before the agent runs, is called as send
	// starts dialing an address (done false) and when that dial ends, with
	// the dial's context.
	dialHook func(ctx context.Context, addr netip.AddrPort, done bool, err error)

	// completeMu serializes complete, so that a pairing is stored once
	// even when the user's scan and the peer's Hello finish it together.
	completeMu sync.Mutex

	mu sync.Mutex
	// Guarded by mu.
	machines  []*pairing.Machine        // one per invite shown, newest last; pruned after expiry
	dialing   map[seed.DevicePublic]int // devices this device is dialing to pair, with a count
	dialAddrs map[netip.AddrPort]int    // and their addresses
	// completed holds the pairings stored, by machine, so that a Hello
	// repeated after completion does not store the peer again (and
	// overwrite the address presence has moved it to since).
	completed map[*pairing.Machine]roster.Friend
	// observed is the address a verified Hello of a device came from: where
	// that device is reachable, whatever its invite says.
	observed map[seed.DevicePublic]netip.AddrPort
	// changed is closed, and replaced, whenever a Hello moved a machine on;
	// wait watches it.
	changed chan struct{}
}

func newPairer(a *Agent) *pairer {
	return &pairer{
		a:         a,
		dialing:   map[seed.DevicePublic]int{},
		dialAddrs: map[netip.AddrPort]int{},
		completed: map[*pairing.Machine]roster.Friend{},
		observed:  map[seed.DevicePublic]netip.AddrPort{},
		changed:   make(chan struct{}),
	}
}

// notify wakes every wait.
func (p *pairer) notify() {
	p.mu.Lock()
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// changes returns the channel the next notify closes.
func (p *pairer) changes() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}

// show makes a new invite valid for ttl (the configured default when 0).
func (p *pairer) show(ttl time.Duration) (control.ShowResult, error) {
	if ttl <= 0 {
		ttl = p.a.cfg.InviteTTL
	}
	inv, err := pairing.NewInvite(p.a.dev.Cert.User, p.a.dev.Device.Ed25519(), p.a.inviteAddrs(), ttl, p.a.cfg.Now())
	if err != nil {
		return control.ShowResult{}, fmt.Errorf("making an invite: %w", err)
	}
	m := pairing.NewMachine(inv, p.a.dev.Device.Ed25519())
	p.mu.Lock()
	p.prune()
	p.machines = append(p.machines, m)
	p.mu.Unlock()
	p.a.invitesChanged()
	return control.ShowResult{Code: inv.Encode(), ExpiresAt: inv.Expires.UTC()}, nil
}

// prune drops machines whose invite expired more than a minute ago and that
// never completed. Completed ones are kept until then too, so that a reuse
// is refused as such. Called with mu held.
func (p *pairer) prune() {
	now := p.a.cfg.Now()
	kept := p.machines[:0]
	for _, m := range p.machines {
		if now.Sub(m.Ours().Expires) < time.Hour {
			kept = append(kept, m)
		} else {
			delete(p.completed, m)
		}
	}
	clear(p.machines[len(kept):])
	p.machines = kept
}

// admits reports whether an unknown key may connect because of a pairing
// in progress: inbound while an invite of ours is open, outbound to a device
// whose code the user scanned.
func (p *pairer) admits(peer ed25519.PublicKey, dir transport.Direction) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if dir == transport.Outbound {
		d, ok := devOf(peer)
		return ok && p.dialing[d] > 0
	}
	return p.openLocked()
}

// open reports whether an invite of ours is open: shown, not yet used and
// not expired.
func (p *pairer) open() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.openLocked()
}

func (p *pairer) openLocked() bool {
	now := p.a.cfg.Now()
	for _, m := range p.machines {
		if !m.Done() && now.Before(m.Ours().Expires) {
			return true
		}
	}
	return false
}

// dialingAddr reports whether addr belongs to an invite the user scanned and
// this device is dialing now.
func (p *pairer) dialingAddr(addr netip.AddrPort) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dialAddrs[addr] > 0
}

// usedKey is the store key recording that an invite was used.
func usedKey(inv pairing.Invite) string {
	h := sha256.Sum256(inv.Bytes())
	return hex.EncodeToString(h[:])
}

// refusal turns a pairing error into a control error: the invite reasons
// are bad input (exit 2), with their one-word reason.
func refusal(err error) error {
	if r := pairing.Reason(err); r != "" {
		return &control.Error{Kind: control.KindBadInput, Message: fmt.Sprintf("invite refused (%s): %v", r, err), Reason: r}
	}
	return err
}

// blockedInvite reports whether the invite's user is blocked: by user ID
// for a version 1 invite, by its user tag for version 2.
func (p *pairer) blockedInvite(inv pairing.Invite) (seed.UserPublic, bool) {
	fs, _ := p.a.book.snapshot()
	for _, f := range fs {
		if f.Status == roster.StatusBlocked && inv.MatchesUser(f.UserID) {
			return f.UserID, true
		}
	}
	return seed.UserPublic{}, false
}

// scan handles a code the user scanned: it contacts the invite's device,
// proves the scan, and completes the pairing if the other side has scanned
// ours too.
//
// The pairing is complete here as soon as both proofs are known, in
// whichever order they came: if the other device's Hello arrived before the
// scan, the pairing is stored at once, even when that device cannot be
// reached (it is behind a NAT, say), and its own wait fetches our proof. A
// device that cannot be reached is no failure either: the scan is recorded,
// the other side completes the pairing when it scans our code, and the
// result says "waiting" with the reason in Unreachable.
func (p *pairer) scan(ctx context.Context, code string) (control.ScanResult, error) {
	a := p.a
	now := a.cfg.Now()
	inv, err := pairing.ParseInvite(code, now)
	if err != nil {
		return control.ScanResult{}, refusal(err)
	}
	if user, ok := p.blockedInvite(inv); ok {
		return control.ScanResult{}, refusal(fmt.Errorf("%w: you blocked user %s; unblock them first with \"kith friends unblock %s\"", pairing.ErrBlocked, user, user))
	}
	if seed.DevicePublic(inv.Device).Equal(a.dev.Device.Public()) {
		return control.ScanResult{}, refusal(fmt.Errorf("%w: this is this device's own code; scan the code shown on the other device", pairing.ErrForeign))
	}
	if ok, err := a.st.Get(store.BucketInvites, usedKey(inv), new(usedInvite)); err != nil {
		return control.ScanResult{}, err
	} else if ok {
		return control.ScanResult{}, refusal(fmt.Errorf("%w: this code was already used to pair; ask for a fresh one (kith pair show)", pairing.ErrReused))
	}
	m := p.machineFor(inv)
	if m == nil {
		return control.ScanResult{}, &control.Error{Kind: control.KindBadInput, Reason: "no_invite",
			Message: "pairing is mutual: first show your own code with \"kith pair show\" so the other person can scan it, then scan theirs"}
	}
	hello, err := m.Scanned(inv, now)
	if err != nil {
		return control.ScanResult{}, refusal(err)
	}
	hello.Profile = a.profile()
	res := control.ScanResult{Kind: roster.KindFriend, SAS: m.SAS(), Status: pairing.StatusWaiting}
	if inv.Version == pairing.InviteVersion1 {
		res.UserID = inv.User
	}
	if inv.MatchesUser(a.dev.Cert.User) {
		res.Kind = roster.KindOwn
	}
	doneFirst := m.Done()
	if doneFirst {
		// The other device's Hello came first: the pairing is complete.
		if _, err := p.complete(m, netip.AddrPort{}); err != nil {
			return control.ScanResult{}, err
		}
	}
	sctx := ctx
	if doneFirst {
		// Stored already: telling the other device is a courtesy that
		// saves it one retry of its wait, not worth the user's time when
		// the other device cannot be reached (it is behind a NAT).
		var cancel context.CancelFunc
		sctx, cancel = context.WithTimeout(ctx, noticeTimeout)
		defer cancel()
	}
	reply, via, err := p.send(sctx, inv, hello)
	switch {
	case err != nil && !m.Done() && errors.Is(err, errUnreachable):
		res.Unreachable = err.Error()
	case err != nil && !m.Done():
		// It was reached and said nothing, as an agent does to a user it
		// blocked.
		return control.ScanResult{}, err
	case err != nil:
		a.log.Debug("pairing: the other device did not hear that the pairing completed; its own wait will ask again", "err", err)
	default:
		if err := p.checkReplyCert(&res, inv, reply.Profile); err != nil && !doneFirst {
			return control.ScanResult{}, err
		}
		if err := m.HandleReply(reply, a.cfg.Now()); err != nil {
			if !doneFirst {
				return control.ScanResult{}, refusal(err)
			}
			if errors.Is(err, pairing.ErrStorage) {
				// Stored here, lost there: say so, so that the other
				// person makes room and the scan is repeated.
				return control.ScanResult{}, refusal(fmt.Errorf("paired on this device, but %w", err))
			}
		}
	}
	if m.Done() {
		f, err := p.complete(m, via)
		if err != nil {
			return control.ScanResult{}, err
		}
		return p.pairedResult(m, f), nil
	}
	return res, nil
}

// checkReplyCert fills in the user and name of a waiting result from the
// device certificate in a reply, once it is the invite's device's and the
// invite's user's, and refuses a user blocked here.
func (p *pairer) checkReplyCert(res *control.ScanResult, inv pairing.Invite, prof *pairing.Profile) error {
	if prof == nil || len(prof.Cert) == 0 {
		return nil
	}
	cert, err := seed.ParseDeviceCert(prof.Cert)
	if err != nil || !cert.Device.Equal(seed.DevicePublic(inv.Device)) || !inv.MatchesUser(cert.User) {
		return nil // complete checks the certificate that counts
	}
	if p.a.book.blockedUser(cert.User) {
		return refusal(fmt.Errorf("%w: you blocked user %s; unblock them first with \"kith friends unblock %s\"", pairing.ErrBlocked, cert.User, cert.User))
	}
	res.UserID, res.Name, res.Kind = cert.User, cert.Name, kindOf(p.a, cert.User)
	return nil
}

// pairedResult is the answer for a stored pairing.
func (p *pairer) pairedResult(m *pairing.Machine, f roster.Friend) control.ScanResult {
	return control.ScanResult{UserID: f.UserID, Name: f.Name, Kind: kindOf(p.a, f.UserID), SAS: m.SAS(), Status: pairing.StatusPaired}
}

// noticeTimeout bounds a scan's telling the other device that a pairing
// it completed is stored: the other device's wait asks again every
// waitRetry anyway.
const noticeTimeout = 2 * time.Second

// waitRetry is how often wait sends its Hello again, for the case where the
// other device cannot reach this one: its answer then carries its proof.
const waitRetry = 2 * time.Second

// wait waits until the pairing with the scanned code completes, and
// returns it; or until either invite expires, or ctx ends. While it waits
// it sends its Hello again every waitRetry, so that a pairing completes
// even when only this device can reach the other.
func (p *pairer) wait(ctx context.Context, code string) (control.ScanResult, error) {
	a := p.a
	inv, err := pairing.ParseInvite(code, a.cfg.Now())
	if err != nil {
		return control.ScanResult{}, refusal(err)
	}
	m := p.scannedMachine(inv)
	if m == nil {
		return control.ScanResult{}, &control.Error{Kind: control.KindBadInput, Reason: "not_scanned",
			Message: "this device has not scanned that code: scan it first with \"kith pair scan\""}
	}
	deadline := m.Ours().Expires
	if inv.Expires.Before(deadline) {
		deadline = inv.Expires
	}
	expire := time.NewTimer(deadline.Sub(a.cfg.Now()))
	defer expire.Stop()
	retry := time.NewTicker(waitRetry)
	defer retry.Stop()
	var via netip.AddrPort
	for {
		changed := p.changes()
		if m.Done() {
			f, err := p.complete(m, via)
			if err != nil {
				return control.ScanResult{}, err
			}
			return p.pairedResult(m, f), nil
		}
		select {
		case <-changed:
		case <-retry.C:
			hello, err := m.Scanned(inv, a.cfg.Now())
			if err != nil {
				continue // done meanwhile, or expired: the loop says which
			}
			hello.Profile = a.profile()
			sctx, cancel := context.WithDeadline(ctx, deadline)
			reply, v, err := p.send(sctx, inv, hello)
			cancel()
			if err != nil {
				continue
			}
			if err := m.HandleReply(reply, a.cfg.Now()); err != nil && !m.Done() {
				return control.ScanResult{}, refusal(err)
			}
			via = v
		case <-expire.C:
			return control.ScanResult{}, &control.Error{Kind: control.KindFailed, Reason: "expired",
				Message: "the codes expired before the pairing completed: the other device has not scanned this device's code, or could not reach it"}
		case <-ctx.Done():
			return control.ScanResult{}, ctx.Err()
		}
	}
}

// scannedMachine returns the machine of ours whose user scanned inv.
func (p *pairer) scannedMachine(inv pairing.Invite) *pairing.Machine {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.machines) - 1; i >= 0; i-- {
		if m := p.machines[i]; m.HasScanned() && m.Peer().Equal(inv) {
			return m
		}
	}
	return nil
}

func kindOf(a *Agent, user seed.UserPublic) roster.Kind {
	if user.Equal(a.dev.Cert.User) {
		return roster.KindOwn
	}
	return roster.KindFriend
}

// machineFor picks the invite of ours to pair with the scanned inv: the one
// whose pairing already holds inv's Hello (the other side scanned first),
// else the newest open one that has scanned nothing yet.
func (p *pairer) machineFor(inv pairing.Invite) *pairing.Machine {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prune()
	now := p.a.cfg.Now()
	for i := len(p.machines) - 1; i >= 0; i-- {
		m := p.machines[i]
		// A done one too: scan found no stored pairing, so the answer
		// that completes ours was lost, and scanning again retries it.
		if m.Awaits(inv) || m.Peer().Equal(inv) {
			return m
		}
	}
	for i := len(p.machines) - 1; i >= 0; i-- {
		m := p.machines[i]
		if !m.Done() && !m.HasScanned() && now.Before(m.Ours().Expires) {
			return m
		}
	}
	return nil
}

// errUnreachable: no address of the invite answered.
var errUnreachable = errors.New("could not reach the other device")

// dialTimeout bounds one pairing exchange: the dial and the Hello's reply.
const dialTimeout = 10 * time.Second

// send dials the invite's device at all of its addresses at once, keeps
// the first that answers, and exchanges the Hello for a Reply over it. It
// returns the address that answered. When no address answers, its error
// wraps errUnreachable.
func (p *pairer) send(ctx context.Context, inv pairing.Invite, hello pairing.Hello) (pairing.Reply, netip.AddrPort, error) {
	id := seed.DevicePublic(inv.Device)
	p.mu.Lock()
	p.dialing[id]++
	for _, ad := range inv.Addrs {
		p.dialAddrs[ad]++
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		if p.dialing[id]--; p.dialing[id] <= 0 {
			delete(p.dialing, id)
		}
		for _, ad := range inv.Addrs {
			if p.dialAddrs[ad]--; p.dialAddrs[ad] <= 0 {
				delete(p.dialAddrs, ad)
			}
		}
		p.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	s, addr, err := p.dialFirst(ctx, inv.Addrs, inv.Device[:])
	if err != nil {
		return pairing.Reply{}, netip.AddrPort{}, fmt.Errorf("%w (%w)", errUnreachable, err)
	}
	defer s.Close()
	reply, err := exchange(ctx, s, hello)
	if err != nil {
		return pairing.Reply{}, netip.AddrPort{}, fmt.Errorf("the other device did not answer (%s: %w)", addr, err)
	}
	return reply, addr, nil
}

// dialFirst opens a pairing stream to key at every address at once and
// returns the first that opens; the others are cancelled, or closed if
// they opened too. It returns once every dial has ended.
func (p *pairer) dialFirst(ctx context.Context, addrs []netip.AddrPort, key ed25519.PublicKey) (*transport.Stream, netip.AddrPort, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		s    *transport.Stream
		addr netip.AddrPort
		err  error
	}
	results := make(chan result, len(addrs))
	for _, addr := range addrs {
		go func() {
			if p.dialHook != nil {
				p.dialHook(ctx, addr, false, nil)
			}
			s, err := p.a.tr.OpenStream(ctx, addr, key, protoPairing)
			results <- result{s, addr, err}
		}()
	}
	var (
		first *result
		errs  []error
	)
	for range addrs {
		r := <-results
		if p.dialHook != nil {
			p.dialHook(ctx, r.addr, true, r.err)
		}
		switch {
		case r.err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", r.addr, r.err))
		case first == nil:
			first = &r
			cancel()
		default:
			r.s.Close()
		}
	}
	if first == nil {
		return nil, netip.AddrPort{}, errors.Join(errs...)
	}
	return first.s, first.addr, nil
}

// exchange writes the Hello on s and reads the Reply.
func exchange(ctx context.Context, s *transport.Stream, hello pairing.Hello) (pairing.Reply, error) {
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	if err := writeJSON(s, hello); err != nil {
		return pairing.Reply{}, err
	}
	var reply pairing.Reply
	if err := readJSON(s, maxPairFrame, &reply); err != nil {
		return pairing.Reply{}, fmt.Errorf("reading the reply: %w", err)
	}
	return reply, nil
}

// serve answers a Hello from a device that scanned one of our invites.
func (p *pairer) serve(ctx context.Context, s *transport.Stream) {
	var hello pairing.Hello
	if err := readJSON(s, maxPairFrame, &hello); err != nil {
		return
	}
	reply, m := p.handle(hello, s.Conn().PeerKey())
	if reply.Status == "" {
		return // a blocked user: no answer at all
	}
	if m != nil {
		from := s.Conn().RemoteAddr()
		if d, ok := devOf(s.Conn().PeerKey()); ok && from.IsValid() {
			p.mu.Lock()
			p.observed[d] = from
			p.mu.Unlock()
		}
		switch {
		case m.Done() && reply.Status == pairing.StatusPaired:
			if _, err := p.complete(m, from); err != nil {
				p.a.log.Warn("saving a pairing", "err", err)
				reply = pairing.Refusal(err)
			} else {
				reply.Profile = p.a.profile()
			}
		case reply.Status == pairing.StatusWaiting:
			// Who we are, for the scanner's screen; the window secret
			// only once paired.
			reply.Profile = &pairing.Profile{Name: p.a.dev.Identity.Name, Cert: p.a.dev.Identity.Cert}
		}
		p.notify()
	}
	writeJSON(s, reply)
}

// handle finds the machine of ours that the Hello proves and lets it answer.
func (p *pairer) handle(hello pairing.Hello, peer ed25519.PublicKey) (pairing.Reply, *pairing.Machine) {
	now := p.a.cfg.Now()
	peerInv, err := pairing.ParseInvite(hello.Invite, now)
	if err != nil {
		return pairing.Refusal(err), nil
	}
	if _, blocked := p.blockedInvite(peerInv); blocked {
		// Nothing from a blocked user is answered or stored.
		return pairing.Reply{}, nil
	}
	p.mu.Lock()
	machines := append([]*pairing.Machine(nil), p.machines...)
	p.mu.Unlock()
	var last error = fmt.Errorf("%w: no invite of this device matches", pairing.ErrForeign)
	for i := len(machines) - 1; i >= 0; i-- {
		m := machines[i]
		if !m.Proves(hello) {
			continue
		}
		reply, err := m.HandleHello(hello, peer, now)
		if err != nil {
			return reply, nil
		}
		return reply, m
	}
	return pairing.Refusal(last), nil
}

// usedInvite records an invite used for a pairing.
type usedInvite struct {
	At time.Time `json:"at"`
}

// complete stores a finished pairing: the friend or own device, and both
// invites as used, in one transaction. It stores each pairing once; later
// calls return what was stored.
//
// The peer is stored at observed, the address its connection came from or
// the address of the invite that answered, when valid; else at the address
// a Hello of it came from; else at its invite's first address.
func (p *pairer) complete(m *pairing.Machine, observed netip.AddrPort) (roster.Friend, error) {
	p.completeMu.Lock()
	defer p.completeMu.Unlock()
	a := p.a
	peer := m.Peer()
	dev := seed.DevicePublic(peer.Device)
	p.mu.Lock()
	f, done := p.completed[m]
	if !observed.IsValid() {
		observed = p.observed[dev]
	}
	p.mu.Unlock()
	if done {
		return f, nil
	}
	prof := m.PeerProfile()
	if prof == nil {
		return roster.Friend{}, errors.New("the other device sent no profile: update kith on both devices")
	}
	cert, err := seed.ParseDeviceCert(prof.Cert)
	if err != nil {
		return roster.Friend{}, fmt.Errorf("the other device's certificate: %w", err)
	}
	if !peer.MatchesUser(cert.User) || !cert.Device.Equal(dev) {
		return roster.Friend{}, errors.New("the other device's certificate is for another user or device: pair again with fresh codes")
	}
	user := cert.User
	if _, blocked := p.blockedInvite(peer); blocked || a.book.blockedUser(user) {
		return roster.Friend{}, fmt.Errorf("%w: this user is blocked here", pairing.ErrBlocked)
	}
	kind := kindOf(a, user)
	now := a.cfg.Now().UTC()
	// The name kept and shown is the one the user key certified, which
	// ParseDeviceCert checked (no control or bidirectional characters,
	// bounded length), not the profile's unsigned one.
	f = roster.Friend{UserID: user, Name: cert.Name, Status: roster.StatusFriend, SAS: m.SAS(), PairedAt: now, Window: prof.Window}
	pr := Peer{Device: roster.Device{DeviceID: dev, UserID: user, Kind: kind, Name: cert.Name, Cert: prof.Cert}, LastSeen: now}
	add := func(s string) {
		if !slices.Contains(pr.Addrs, s) {
			pr.Addrs = append(pr.Addrs, s)
		}
	}
	if observed.IsValid() {
		add(observed.String())
	}
	for _, ad := range peer.Addrs {
		add(ad.String())
	}
	for _, ad := range prof.Addrs {
		add(ad)
	}
	if len(pr.Addrs) > 0 {
		pr.Addr = pr.Addrs[0]
	}
	used := usedInvite{At: now}
	markUsed := func(tx *store.Tx) error {
		if err := tx.Put(store.BucketInvites, usedKey(peer), used); err != nil {
			return err
		}
		return tx.Put(store.BucketInvites, usedKey(m.Ours()), used)
	}
	if err := a.book.addPairing(f, pr, markUsed); err != nil {
		return roster.Friend{}, fmt.Errorf("%w: %w", pairing.ErrStorage, err)
	}
	p.mu.Lock()
	p.completed[m] = f
	p.mu.Unlock()
	p.notify()
	a.invitesChanged() // an invite used: strangers may have to go
	a.log.Info("paired", "user", user.ID(), "device", dev.ID(), "kind", kind, "addr", pr.Addr)
	return f, nil
}

// profile is what this device tells a device it pairs with.
func (a *Agent) profile() *pairing.Profile {
	return &pairing.Profile{
		Name:   a.dev.Identity.Name,
		Cert:   a.dev.Identity.Cert,
		Window: append([]byte(nil), a.dev.Window[:]...),
	}
}

// inviteAddrs are the addresses an invite may carry, best first: this
// device's first own address, the public ones learned through STUN and from
// peers, then its other addresses (loopback last, useful only on this
// machine). The invite keeps the first few (pairing.NewInvite).
func (a *Agent) inviteAddrs() []netip.AddrPort {
	local := a.localAddrs()
	sortLoopbackLast(local)
	var out []netip.AddrPort
	if len(local) > 0 && !local[0].Addr().IsLoopback() {
		out, local = append(out, local[0]), local[1:]
	}
	for _, ad := range append(a.presence.PublicAddrs(), local...) {
		if !slices.Contains(out, ad) {
			out = append(out, ad)
		}
	}
	if len(out) > pairing.MaxAddrsV1 {
		out = out[:pairing.MaxAddrsV1]
	}
	if len(out) == 0 {
		out = append(out, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), a.Addr().Port()))
	}
	return out
}

func sortLoopbackLast(as []netip.AddrPort) {
	j := 0
	for i, ad := range as {
		if !ad.Addr().IsLoopback() {
			as[i], as[j] = as[j], as[i]
			j++
		}
	}
}
