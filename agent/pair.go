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
	a *Agent

	mu sync.Mutex
	// Guarded by mu.
	machines  []*pairing.Machine        // one per invite shown, newest last; pruned after expiry
	dialing   map[seed.DevicePublic]int // devices this device is dialing to pair, with a count
	dialAddrs map[netip.AddrPort]int    // and their addresses
}

func newPairer(a *Agent) *pairer {
	return &pairer{a: a, dialing: map[seed.DevicePublic]int{}, dialAddrs: map[netip.AddrPort]int{}}
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
		}
	}
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

// scan handles a code the user scanned: it contacts the invite's device,
// proves the scan, and completes the pairing if the other side has scanned
// ours too.
func (p *pairer) scan(ctx context.Context, code string) (control.ScanResult, error) {
	a := p.a
	now := a.cfg.Now()
	inv, err := pairing.ParseInvite(code, now)
	if err != nil {
		return control.ScanResult{}, refusal(err)
	}
	user := seed.UserPublic(inv.User)
	if a.book.blockedUser(user) {
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
	reply, err := p.send(ctx, inv, hello)
	if err != nil {
		return control.ScanResult{}, err
	}
	if err := m.HandleReply(reply, a.cfg.Now()); err != nil {
		return control.ScanResult{}, refusal(err)
	}
	res := control.ScanResult{UserID: user, Kind: kindOf(a, user), SAS: m.SAS(), Status: pairing.StatusWaiting}
	if m.Done() {
		f, err := p.complete(m)
		if err != nil {
			return control.ScanResult{}, err
		}
		res.Status, res.Name = pairing.StatusPaired, f.Name
	}
	return res, nil
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

// send dials the invite's device at each of its addresses in turn and
// exchanges the Hello for a Reply.
func (p *pairer) send(ctx context.Context, inv pairing.Invite, hello pairing.Hello) (pairing.Reply, error) {
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
	var errs []error
	for _, addr := range inv.Addrs {
		reply, err := p.exchange(ctx, addr, inv.Device[:], hello)
		if err == nil {
			return reply, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	return pairing.Reply{}, fmt.Errorf("could not reach the other device (%w); check that its agent runs and that both devices are on the same network", errors.Join(errs...))
}

func (p *pairer) exchange(ctx context.Context, addr netip.AddrPort, key ed25519.PublicKey, hello pairing.Hello) (pairing.Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// The transport closes the connection once no stream uses it, so that
	// an idle agent sends no keep-alives.
	s, err := p.a.tr.OpenStream(ctx, addr, key, protoPairing)
	if err != nil {
		return pairing.Reply{}, err
	}
	defer s.Close()
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
	if m != nil && m.Done() && reply.Status == pairing.StatusPaired {
		if _, err := p.complete(m); err != nil {
			p.a.log.Warn("saving a pairing", "err", err)
			reply = pairing.Refusal(err)
		} else {
			reply.Profile = p.a.profile()
		}
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
	if p.a.book.blockedUser(seed.UserPublic(peerInv.User)) {
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
// invites as used, in one transaction. It is idempotent.
func (p *pairer) complete(m *pairing.Machine) (roster.Friend, error) {
	a := p.a
	peer := m.Peer()
	prof := m.PeerProfile()
	if prof == nil {
		return roster.Friend{}, errors.New("the other device sent no profile: update kith on both devices")
	}
	user, dev := seed.UserPublic(peer.User), seed.DevicePublic(peer.Device)
	cert, err := seed.ParseDeviceCert(prof.Cert)
	if err != nil {
		return roster.Friend{}, fmt.Errorf("the other device's certificate: %w", err)
	}
	if !cert.User.Equal(user) || !cert.Device.Equal(dev) {
		return roster.Friend{}, errors.New("the other device's certificate is for another user or device: pair again with fresh codes")
	}
	kind := kindOf(a, user)
	now := a.cfg.Now().UTC()
	// The name kept and shown is the one the user key certified, which
	// ParseDeviceCert checked (no control or bidirectional characters,
	// bounded length), not the profile's unsigned one.
	f := roster.Friend{UserID: user, Name: cert.Name, Status: roster.StatusFriend, SAS: m.SAS(), PairedAt: now, Window: prof.Window}
	pr := Peer{Device: roster.Device{DeviceID: dev, UserID: user, Kind: kind, Name: cert.Name, Cert: prof.Cert}, LastSeen: now}
	for _, ad := range peer.Addrs {
		pr.Addrs = append(pr.Addrs, ad.String())
	}
	pr.Addrs = append(pr.Addrs, prof.Addrs...)
	if len(peer.Addrs) > 0 {
		pr.Addr = peer.Addrs[0].String()
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
	a.invitesChanged() // an invite used: strangers may have to go
	a.log.Info("paired", "user", user.ID(), "device", dev.ID(), "kind", kind)
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

// inviteAddrs are the addresses an invite carries: this device's own
// addresses (loopback last, useful only on this machine), then public ones
// learned through STUN and from peers.
func (a *Agent) inviteAddrs() []netip.AddrPort {
	out := a.localAddrs()
	sortLoopbackLast(out)
	for _, pub := range a.presence.PublicAddrs() {
		if !slices.Contains(out, pub) {
			out = append(out, pub)
		}
	}
	if len(out) > pairing.MaxAddrs {
		out = out[:pairing.MaxAddrs]
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
