package agent

// Relay: when two devices cannot reach each other (two symmetric NATs, UDP
// blocked one way), a third device both reach, an own always-on device or
// a friend's, forwards their datagrams. The two ends' QUIC and mutual TLS
// run end to end through it; the relay sees ciphertext and metadata only.
//
// # Setting up a session (stream protocol 0x03)
//
// The end that wants the path, A, opens a relay stream to the relay R and
// sends one JSON frame; R asks the other end, B, on a relay stream of its
// own, and answers A:
//
//	A → R  {"op":"open","to":DEVICE_B}
//	R → B  {"op":"offer","from":DEVICE_A,"session":"16 hex digits"}
//	B → R  {"ok":true} or {"ok":false,"reason":"..."}
//	R → A  {"ok":true,"session":"..."} or {"ok":false,"reason":"..."}
//
// An end may also send {"op":"echo","text":"..."} to the other end over
// the relayed path, answered {"ok":true,"echo":"..."} ("kith relay
// --echo": a check that the path carries data end to end).
//
// R relays only if its policy (Config.Relay) allows the pair, both are
// known and neither is blocked or revoked, it has room (maxRelaySessions)
// and quota left; B consents only if it knows A (own device or friend, not
// blocked) and the offer comes from a device it knows. The session ID is
// 64 random bits. R binds the session to A's and B's addresses as it sees
// them on the authenticated connections of those two streams; a relay
// datagram is forwarded only when it comes from one of them, to the other,
// so nobody else can inject into a session or use it to reach anyone. An
// end that moves asks for a new session the same way: no datagram
// re-binds an end.
//
// # Datagrams
//
//	0x30  [session ID 8][packet]  a relayed packet, forwarded as it is
//	0x31  [session ID 8]          refresh: keeps the session (and the ends'
//	                              NAT mappings towards R) alive
//
// The ends reach each other at a virtual address (internal/transport,
// relay.go) that stands for the session; their address books hold the
// other end at it, so heartbeats and streams go through R unchanged.
//
// # Limits
//
// Per session, a token bucket of Config.RelayRate bytes a second (burst
// the same, at least 64 KiB); over all sessions, Config.RelayQuota bytes
// per 24 hours, counted from the first byte of the window. Past the quota
// R refuses new sessions with the reason and drops the datagrams of open
// ones; datagrams over the rate are dropped; every drop is counted. A
// session that carries nothing, data or refresh, for relaySessionIdle is
// forgotten. R never looks past the session ID of a datagram, and logs
// only who talks to whom, when and how much.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
	"golang.org/x/time/rate"
)

// protoRelay is the stream protocol of relay session setup.
const protoRelay byte = 0x03

// RelayPolicy says whose datagrams this device relays (kith run --relay).
type RelayPolicy string

// Relay policies.
const (
	// RelayOwn, the default: between two of this user's own devices, and
	// between an own device and a friend's device.
	RelayOwn RelayPolicy = "own"
	// RelayFriends: also between two friends' devices (of one friend or
	// of two).
	RelayFriends RelayPolicy = "friends"
	// RelayOff: never.
	RelayOff RelayPolicy = "off"
)

// Relay defaults and limits.
const (
	// DefaultRelayRate is the bytes per second one session may carry.
	DefaultRelayRate = 1 << 20
	// DefaultRelayQuota is the bytes all sessions may carry per 24 hours.
	DefaultRelayQuota = 1 << 30
	// RelayQuotaWindow is what RelayQuota is counted over.
	RelayQuotaWindow = 24 * time.Hour

	maxRelaySessions = 32               // sessions this device relays at once
	maxRelayAsked    = 8                // of them, sessions one user's devices asked for
	maxRelayEnds     = 64               // relayed paths this device keeps to others
	relaySessionIdle = 60 * time.Second // a relay forgets a session silent this long
	relayRefresh     = 10 * time.Second // an end refreshes a session in use this often
	relayReleaseIdle = 30 * time.Second // an end drops a route unused this long
	relayTick        = 2 * time.Second
	relayFrameMax    = 4 << 10
	relayAskTimeout  = 10 * time.Second // for each stream of a setup
	relayMinBurst    = 64 << 10
)

// ParseRelayPolicy checks a --relay value; "" is the default, own.
func ParseRelayPolicy(s string) (RelayPolicy, error) {
	switch p := RelayPolicy(s); p {
	case "":
		return RelayOwn, nil
	case RelayOwn, RelayFriends, RelayOff:
		return p, nil
	}
	return "", fmt.Errorf("relay policy %q: use own, friends or off", s)
}

// relayMsg is the first frame of a relay stream: a request (op "open", to)
// from an end to the relay, or an offer (op "offer", from, session) from
// the relay to the other end.
type relayMsg struct {
	Op      string             `json:"op"`
	To      *seed.DevicePublic `json:"to,omitempty"`
	From    *seed.DevicePublic `json:"from,omitempty"`
	Session string             `json:"session,omitempty"`
	Text    string             `json:"text,omitempty"`
}

// relayAnswer answers a relayMsg.
type relayAnswer struct {
	OK      bool   `json:"ok"`
	Session string `json:"session,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Echo    string `json:"echo,omitempty"`
}

// Ops of relayMsg.
const (
	relayOpOpen  = "open"
	relayOpOffer = "offer"
	// relayOpEcho asks an end to send text back, over whatever path it
	// came (kith relay --echo).
	relayOpEcho = "echo"
)

// maxEcho bounds the text of an echo.
const maxEcho = control.MaxRelayEcho

// decodeRelayMsg parses and checks a relay stream's first frame.
func decodeRelayMsg(b []byte) (relayMsg, uint64, error) {
	var m relayMsg
	if err := json.Unmarshal(b, &m); err != nil {
		return relayMsg{}, 0, fmt.Errorf("relay request: %w", err)
	}
	if m.Op != relayOpEcho && m.Text != "" {
		return relayMsg{}, 0, errors.New("relay request: only an echo carries text")
	}
	switch m.Op {
	case relayOpEcho:
		if m.To != nil || m.From != nil || m.Session != "" || m.Text == "" || len(m.Text) > maxEcho {
			return relayMsg{}, 0, fmt.Errorf("relay request: an echo carries only text, 1 to %d bytes", maxEcho)
		}
		return m, 0, nil
	case relayOpOpen:
		if m.To == nil || m.From != nil || m.Session != "" {
			return relayMsg{}, 0, errors.New("relay request: open takes exactly a device to reach")
		}
		return m, 0, nil
	case relayOpOffer:
		if m.From == nil || m.To != nil {
			return relayMsg{}, 0, errors.New("relay request: offer takes exactly the device that asked and a session")
		}
		id, err := parseSessionID(m.Session)
		if err != nil {
			return relayMsg{}, 0, err
		}
		return m, id, nil
	}
	return relayMsg{}, 0, fmt.Errorf("relay request: unknown op %q", clipReason(m.Op))
}

// decodeRelayAnswer parses an answer; a session ID must come with ok, a
// reason without.
func decodeRelayAnswer(b []byte, wantSession bool) (relayAnswer, uint64, error) {
	var ans relayAnswer
	if err := json.Unmarshal(b, &ans); err != nil {
		return relayAnswer{}, 0, fmt.Errorf("relay answer: %w", err)
	}
	ans.Reason = clipReason(ans.Reason)
	if !ans.OK {
		if ans.Reason == "" {
			ans.Reason = "no reason given"
		}
		return ans, 0, nil
	}
	if !wantSession {
		return ans, 0, nil
	}
	id, err := parseSessionID(ans.Session)
	return ans, id, err
}

func parseSessionID(s string) (uint64, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 8 {
		return 0, fmt.Errorf("relay: session ID %q is not 16 hex digits", clipReason(s))
	}
	return binary.BigEndian.Uint64(b), nil
}

func sessionString(id uint64) string { return fmt.Sprintf("%016x", id) }

// clipReason makes a reason a peer wrote safe to log and print: printable
// ASCII only, at most 200 characters.
func clipReason(s string) string {
	out := make([]byte, 0, min(len(s), 200))
	for i := 0; i < len(s) && len(out) < 200; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			out = append(out, c)
		} else {
			out = append(out, '?')
		}
	}
	return string(out)
}

// relayEndpoint is one end of a session this device relays.
type relayEndpoint struct {
	dev  seed.DevicePublic
	addr netip.AddrPort
}

// relaySession is a session this device relays.
type relaySession struct {
	id      uint64
	ends    [2]relayEndpoint // [0] asked, [1] consented
	ready   bool             // the other end consented
	created time.Time
	last    time.Time // last datagram or refresh from either end
	limiter *rate.Limiter
	bytes   uint64 // forwarded
	dropped uint64
}

// relayedPeer is a path this device holds to another device through a
// relay.
type relayedPeer struct {
	id          uint64
	virt        netip.AddrPort
	relay       seed.DevicePublic
	via         string // the relay's name
	lastRefresh time.Time
	// asked says this device asked the relay for the session (ask); one
	// it consented to came from an offer only the relay vouches for.
	asked bool
}

// RelayStats counts what the relay service did.
type RelayStats struct {
	Sessions  int    // relayed by this device now
	Forwarded uint64 // datagrams forwarded
	Bytes     uint64 // bytes forwarded, headers included
	Spoofed   uint64 // dropped: not from a registered end of the session
	Unknown   uint64 // dropped: no such session, or malformed
	OverRate  uint64 // dropped: over the session's rate
	OverQuota uint64 // dropped: the quota was used up
	Refused   uint64 // session requests refused
	Paths     int    // relayed paths this device holds to others
}

// relayService is the agent's relay: the sessions it relays for others,
// and the paths it holds through relays to others.
type relayService struct {
	a *Agent

	mu     sync.Mutex
	policy RelayPolicy // guarded by mu
	rate   float64     // guarded by mu
	quota  uint64      // guarded by mu
	// How long a silent session lives here, and an unused route at an
	// end: relaySessionIdle and relayReleaseIdle, shorter in tests.
	sessionIdle, releaseIdle time.Duration                      // guarded by mu
	sessions                 map[uint64]*relaySession           // guarded by mu
	peers                    map[seed.DevicePublic]*relayedPeer // guarded by mu
	quotaStart               time.Time                          // guarded by mu
	quotaUsed                uint64                             // guarded by mu
	quotaHit                 bool                               // guarded by mu: a datagram was dropped over the quota this window
	quotaSaved               relayQuotaRecord                   // guarded by mu: what the store holds
	st                       RelayStats                         // guarded by mu
}

func newRelayService(a *Agent, cfg Config) *relayService {
	r := &relayService{
		a: a, policy: cfg.Relay, rate: float64(cfg.RelayRate), quota: uint64(cfg.RelayQuota),
		sessions: map[uint64]*relaySession{}, peers: map[seed.DevicePublic]*relayedPeer{},
		sessionIdle: relaySessionIdle, releaseIdle: relayReleaseIdle,
	}
	// The day's quota survives a restart.
	var q relayQuotaRecord
	if ok, err := a.st.Get(store.BucketMeta, relayQuotaKey, &q); err == nil && ok {
		r.quotaStart, r.quotaUsed, r.quotaHit, r.quotaSaved = q.Start, q.Used, q.Used >= r.quota, q
	}
	return r
}

// relayQuotaKey is where bucket "meta" keeps the quota window.
const relayQuotaKey = "relay_quota"

// relayQuotaRecord is the stored quota window.
type relayQuotaRecord struct {
	Start time.Time `json:"start"`
	Used  uint64    `json:"used"`
}

// saveQuota stores the quota window if it changed.
func (r *relayService) saveQuota() {
	r.mu.Lock()
	q := relayQuotaRecord{Start: r.quotaStart, Used: r.quotaUsed}
	same := q.Used == r.quotaSaved.Used && q.Start.Equal(r.quotaSaved.Start)
	r.mu.Unlock()
	if same || q.Start.IsZero() {
		return
	}
	if err := r.a.st.Put(store.BucketMeta, relayQuotaKey, q); err != nil {
		r.a.log.Warn("relay: saving the quota used", "err", err)
		return
	}
	r.mu.Lock()
	r.quotaSaved = q
	r.mu.Unlock()
}

// setLimits changes the policy, rate and quota (0: leave as it is); new
// sessions get them.
func (r *relayService) setLimits(policy RelayPolicy, rate, quota int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if policy != "" {
		r.policy = policy
	}
	if rate > 0 {
		r.rate = float64(rate)
	}
	if quota > 0 {
		r.quota = uint64(quota)
		r.quotaHit = r.quotaHit && r.quotaUsed >= r.quota
	}
}

// status is the relay service as "kith status" shows it.
func (r *relayService) status() control.RelayStatus {
	now := r.a.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	used := r.quotaUsed
	if r.quotaStart.IsZero() || now.Sub(r.quotaStart) >= RelayQuotaWindow || now.Before(r.quotaStart) {
		used = 0 // the window is over; the next datagram starts a new one
	}
	return control.RelayStatus{
		Policy: string(r.policy), Sessions: len(r.sessions), Forwarded: r.st.Bytes,
		Dropped:   r.st.Spoofed + r.st.Unknown + r.st.OverRate + r.st.OverQuota,
		RateBytes: uint64(r.rate), QuotaBytes: r.quota, QuotaUsed: used,
	}
}

// setIdle changes how long silent sessions and unused routes last.
func (r *relayService) setIdle(session, release time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sessionIdle, r.releaseIdle = session, release
}

// stats returns the counters.
func (r *relayService) stats() RelayStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st
	st.Sessions, st.Paths = len(r.sessions), len(r.peers)
	return st
}

// datagram handles a relay datagram that is not for one of our own routes
// (the transport unwraps those): one of a session we relay, or nothing. It
// runs on the transport's read goroutine and never looks at the payload.
func (r *relayService) datagram(pkt []byte, from netip.AddrPort) {
	h, err := transport.ParseRelayHeader(pkt)
	r.mu.Lock()
	if err != nil {
		r.st.Unknown++
		r.mu.Unlock()
		return
	}
	s := r.sessions[h.Session]
	if s == nil || !s.ready {
		r.st.Unknown++
		r.mu.Unlock()
		return
	}
	var to netip.AddrPort
	switch from {
	case s.ends[0].addr:
		to = s.ends[1].addr
	case s.ends[1].addr:
		to = s.ends[0].addr
	default:
		s.dropped++
		r.st.Spoofed++
		r.mu.Unlock()
		return
	}
	now := r.a.cfg.Now()
	if h.Type == transport.RelayRefresh {
		s.last = now
		r.mu.Unlock()
		return
	}
	n := uint64(len(pkt))
	r.rollQuotaLocked(now)
	switch {
	case r.quotaUsed+n > r.quota:
		s.dropped++
		r.st.OverQuota++
		r.quotaHit = true
		r.mu.Unlock()
		return
	case !s.limiter.AllowN(now, len(pkt)):
		s.dropped++
		r.st.OverRate++
		r.mu.Unlock()
		return
	}
	r.quotaUsed += n
	s.bytes += n
	s.last = now
	r.st.Forwarded++
	r.st.Bytes += n
	r.mu.Unlock()
	_ = r.a.tr.WriteDatagram(pkt, to)
}

// rollQuotaLocked starts a new quota window when the current one is over.
func (r *relayService) rollQuotaLocked(now time.Time) {
	if r.quotaStart.IsZero() || now.Sub(r.quotaStart) >= RelayQuotaWindow || now.Before(r.quotaStart) {
		r.quotaStart, r.quotaUsed, r.quotaHit = now, 0, false
	}
}

// serve handles a relay stream: a request to relay (we are the relay) or
// an offer (we are the other end).
func (r *relayService) serve(ctx context.Context, s *transport.Stream) {
	b, err := transport.ReadFrame(s, relayFrameMax)
	if err != nil {
		return
	}
	m, id, err := decodeRelayMsg(b)
	if err != nil {
		r.a.log.Debug("relay: bad request", "peer", s.Conn().RemoteAddr(), "err", err)
		_ = writeJSON(s, relayAnswer{Reason: "malformed request"})
		return
	}
	peer, ok := devOf(s.PeerKey())
	if !ok {
		return
	}
	var ans relayAnswer
	switch m.Op {
	case relayOpOpen:
		ans = r.open(ctx, peer, s.Conn().RemoteAddr(), *m.To)
	case relayOpOffer:
		ans = r.consent(peer, s.Conn().RemoteAddr(), *m.From, id)
	default:
		ans = relayAnswer{OK: true, Echo: m.Text}
	}
	_ = writeJSON(s, ans)
	_ = s.CloseWrite()
}

// refuse counts and logs a refusal and returns it as an answer.
func (r *relayService) refuse(from, to seed.DevicePublic, reason string) relayAnswer {
	r.mu.Lock()
	r.st.Refused++
	r.mu.Unlock()
	// Debug, which the agent's logger rate-limits: peers cause these.
	r.a.log.Debug("relay: refused a session", "from", from.Short(), "to", to.Short(), "reason", reason)
	return relayAnswer{Reason: reason}
}

// allowed checks the policy for a session between a and b, both in the
// roster r. It returns the reason to refuse, or "".
func (r *relayService) allowed(ros *roster.Roster, a, b seed.DevicePublic) string {
	r.mu.Lock()
	policy := r.policy
	r.mu.Unlock()
	if policy == RelayOff {
		return "this device does not relay (kith run --relay off)"
	}
	if a.Equal(b) || a.Equal(r.a.dev.Cert.Device) || b.Equal(r.a.dev.Cert.Device) {
		return "a relay session joins two other devices"
	}
	da, okA := ros.Reachable(a)
	db, okB := ros.Reachable(b)
	if !okA {
		return "the relay does not know the device that asked"
	}
	if !okB {
		return "the relay does not know the device asked for (or it is blocked or revoked there)"
	}
	if policy == RelayOwn && da.Kind != roster.KindOwn && db.Kind != roster.KindOwn {
		return "this device relays only for its own user's devices (kith run --relay own); two friends need --relay friends"
	}
	return ""
}

// open serves a request from the device from, seen at fromAddr, to relay
// to the device to.
func (r *relayService) open(ctx context.Context, from seed.DevicePublic, fromAddr netip.AddrPort, to seed.DevicePublic) relayAnswer {
	rs := r.a.book.rosterNow()
	if reason := r.allowed(rs, from, to); reason != "" {
		return r.refuse(from, to, reason)
	}
	p, ok := r.a.book.peerFor(to)
	toAddr, err := netip.ParseAddrPort(p.Addr)
	if !ok || err != nil || !toAddr.IsValid() {
		return r.refuse(from, to, "the relay has no address for the device asked for")
	}
	if transport.IsRelayAddr(toAddr) {
		return r.refuse(from, to, "the relay itself reaches that device only through a relay")
	}
	now := r.a.cfg.Now()
	r.mu.Lock()
	r.rollQuotaLocked(now)
	switch {
	case r.quotaUsed >= r.quota || r.quotaHit:
		left := RelayQuotaWindow - now.Sub(r.quotaStart)
		r.mu.Unlock()
		return r.refuse(from, to, fmt.Sprintf("the relay's quota of %d bytes per day is used up (kith run --relay-quota); it renews in %s", r.quota, left.Round(time.Minute)))
	}
	if old := r.pairSessionLocked(from, to); old != nil {
		if old.ends[1].dev.Equal(from) && (!old.ready || now.Sub(old.created) < relayCrossWindow) {
			// The two ends asked at once (each fell back to a relay
			// after the same failed punch): the second gets the first's
			// session, which it is offered or consented to already, or
			// each would install another and neither would hear the
			// other. The same end asking again gets a new session,
			// offered anew.
			old.ends[1].addr = fromAddr
			old.last = now
			r.mu.Unlock()
			return relayAnswer{OK: true, Session: sessionString(old.id)}
		}
		delete(r.sessions, old.id) // an older session of the pair: replaced
	}
	if len(r.sessions) >= maxRelaySessions {
		r.mu.Unlock()
		return r.refuse(from, to, fmt.Sprintf("the relay already relays %d sessions, its limit", maxRelaySessions))
	}
	// One friend's devices do not get to fill the table: the sessions
	// they asked for are bounded on their own.
	if n := r.askedByLocked(rs, from); n >= maxRelayAsked {
		r.mu.Unlock()
		return r.refuse(from, to, fmt.Sprintf("the relay already relays %d sessions that this user's devices asked for, its limit per user", n))
	}
	var id uint64
	for id == 0 || r.sessions[id] != nil {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = binary.BigEndian.Uint64(b[:])
	}
	burst := relayMinBurst
	if r.rate > relayMinBurst {
		burst = int(min(r.rate, 1<<30)) // an int on 32-bit platforms too
	}
	s := &relaySession{
		id: id, created: now, last: now,
		ends:    [2]relayEndpoint{{dev: from, addr: fromAddr}, {dev: to}},
		limiter: rate.NewLimiter(rate.Limit(r.rate), burst),
	}
	r.sessions[id] = s
	r.mu.Unlock()

	toSeen, err := r.offer(ctx, toAddr, to, from, id)
	r.mu.Lock()
	if err == nil {
		s.ends[1].addr, s.ready, s.last = toSeen, true, r.a.cfg.Now()
	} else {
		delete(r.sessions, id)
	}
	r.mu.Unlock()
	if err != nil {
		return r.refuse(from, to, err.Error())
	}
	r.a.log.Info("relay: session open", "session", sessionString(id)[:8], "from", from.Short(), "to", to.Short())
	return relayAnswer{OK: true, Session: sessionString(id)}
}

// askedByLocked counts the sessions that devices of from's user asked for.
func (r *relayService) askedByLocked(rs *roster.Roster, from seed.DevicePublic) int {
	user, ok := deviceUser(rs, from)
	if !ok || user == rs.Self() {
		return 0 // own devices are not who the bound is for
	}
	n := 0
	for _, s := range r.sessions {
		if u, ok := deviceUser(rs, s.ends[0].dev); ok && u == user {
			n++
		}
	}
	return n
}

// deviceUser is the user a device of the roster belongs to.
func deviceUser(rs *roster.Roster, d seed.DevicePublic) (seed.UserPublic, bool) {
	dev, ok := rs.Device(d)
	return dev.UserID, ok
}

// relayCrossWindow is how long after a session opens a request of its
// other end for the same pair is taken as the two asking at once, and
// answered with that session.
const relayCrossWindow = 2 * relayAskTimeout

// pairSessionLocked returns the session between a and b, either way
// round, if there is one.
func (r *relayService) pairSessionLocked(a, b seed.DevicePublic) *relaySession {
	for _, s := range r.sessions {
		e0, e1 := s.ends[0].dev, s.ends[1].dev
		if (e0.Equal(a) && e1.Equal(b)) || (e0.Equal(b) && e1.Equal(a)) {
			return s
		}
	}
	return nil
}

// offer asks the device to, at addr, whether it takes a session with from;
// it returns the address to answered from. Its errors go back to from, so
// they never carry to's address (friends do not learn each other's
// addresses through a relay); the details are logged here.
func (r *relayService) offer(ctx context.Context, addr netip.AddrPort, to, from seed.DevicePublic, id uint64) (netip.AddrPort, error) {
	ctx, cancel := context.WithTimeout(ctx, relayAskTimeout)
	defer cancel()
	fail := func(what string, err error) (netip.AddrPort, error) {
		r.a.log.Debug("relay: asking the other end failed", "to", to.Short(), "what", what, "err", err)
		return netip.AddrPort{}, errors.New(what)
	}
	s, err := r.a.tr.OpenStream(ctx, addr, to.Ed25519(), protoRelay)
	if err != nil {
		return fail("the relay could not reach the device asked for", err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	if err := writeJSON(s, relayMsg{Op: relayOpOffer, From: &from, Session: sessionString(id)}); err != nil {
		return fail("the relay could not ask the device asked for", err)
	}
	b, err := transport.ReadFrame(s, relayFrameMax)
	if err != nil {
		return fail("the device asked for did not answer the relay", err)
	}
	ans, _, err := decodeRelayAnswer(b, false)
	if err != nil {
		return fail("the device asked for answered the relay with nonsense", err)
	}
	if !ans.OK {
		return netip.AddrPort{}, fmt.Errorf("the device asked for refused: %s", ans.Reason)
	}
	return s.Conn().RemoteAddr(), nil
}

// consent answers an offer from the relay via, seen at viaAddr, of a
// session id with the device from.
func (r *relayService) consent(via seed.DevicePublic, viaAddr netip.AddrPort, from seed.DevicePublic, id uint64) relayAnswer {
	p, ok := r.a.book.peerFor(from)
	if !ok || from.Equal(r.a.dev.Cert.Device) {
		r.a.log.Debug("relay: refused an offer from an unknown or blocked device", "via", via.Short(), "from", from.Short())
		return relayAnswer{Reason: "the device asked for does not know the device that asked"}
	}
	relay, ok := r.a.book.peerFor(via)
	if !ok {
		return relayAnswer{Reason: "unknown relay"}
	}
	if err := r.install(from, id, viaAddr, relay, false); err != nil {
		r.a.log.Debug("relay: could not take a relayed path", "from", from.Short(), "via", via.Short(), "err", err)
		return relayAnswer{Reason: "the device asked for cannot take another relayed path now"}
	}
	r.a.log.Info("relay: path through a relay", "peer", p.DeviceID.Short(), "via", relay.Name)
	return relayAnswer{OK: true}
}

// install routes device d through session id of the relay at relayAddr
// and moves d there in the book, so that heartbeats and streams follow;
// asked says whether this device asked for the session.
func (r *relayService) install(d seed.DevicePublic, id uint64, relayAddr netip.AddrPort, relay Peer, asked bool) error {
	r.mu.Lock()
	old := r.peers[d]
	if old == nil && len(r.peers) >= maxRelayEnds {
		r.mu.Unlock()
		return fmt.Errorf("too many relayed paths (%d)", maxRelayEnds)
	}
	r.mu.Unlock()
	virt, err := r.a.tr.AddRelayRoute(id, relayAddr)
	if err != nil {
		return err
	}
	now := r.a.cfg.Now()
	r.mu.Lock()
	if old = r.peers[d]; old != nil && old.id != id {
		r.a.tr.RemoveRelayRoute(old.id)
	}
	r.peers[d] = &relayedPeer{id: id, virt: virt, relay: relay.DeviceID, via: relay.Name, lastRefresh: now, asked: asked}
	r.mu.Unlock()
	r.a.paths.set(d, virt, PathRelay, relay.Name, now)
	r.moveTo(d, virt)
	return nil
}

// moveTo moves d to the virtual address virt in the book, as only the
// relay service may (mayMove). It is moved, not marked seen: only d's own
// packets, arriving through the relay, say it is online.
func (r *relayService) moveTo(d seed.DevicePublic, virt netip.AddrPort) {
	if r.a.book.setAddr(d, virt, 0, r.a.cfg.Now()) {
		r.a.log.Info("peer moved", "device", d.Short(), "addr", virt.String())
	}
}

// mayMove tells presence whether an authenticated packet from addr may
// move d there. A real address always may: a direct or punched path wins
// over a relayed one as soon as one packet comes over it. A virtual one
// only replaces another virtual address with the current session's: the
// relay service moves peers onto relayed paths (install), and the other
// end's packets still coming through the relay after a direct path won
// must not move it back, or the two paths would take turns.
func (r *relayService) mayMove(d seed.DevicePublic, addr netip.AddrPort) bool {
	if !transport.IsRelayAddr(addr) {
		return true
	}
	r.mu.Lock()
	p := r.peers[d]
	r.mu.Unlock()
	if p == nil || p.virt != addr {
		return false
	}
	cur, ok := r.a.book.peerFor(d)
	if !ok {
		return false
	}
	ap, err := netip.ParseAddrPort(cur.Addr)
	return err != nil || transport.IsRelayAddr(ap)
}

// relayTo sets up a relayed path to d through the best relay: an own
// device that is online first, then friends' devices, each asked in turn
// until one relays. It reports whether d is now reached through a relay;
// (false, nil) means no device was online to ask, and an error says why
// every relay asked refused.
func (a *Agent) relayTo(ctx context.Context, d seed.DevicePublic) (bool, error) {
	if _, ok := a.book.peerFor(d); !ok {
		return false, fmt.Errorf("relay: %s is not a known device", d.Short())
	}
	if a.relay.live(d) {
		return true, nil // the path in use, or one still carrying d's packets: back onto it
	}
	cands := a.relayCandidates(d)
	if len(cands) == 0 {
		return false, nil
	}
	var errs []error
	for _, c := range cands {
		err := a.relay.ask(ctx, c, d)
		if err == nil {
			return true, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		errs = append(errs, fmt.Errorf("%s: %w", clipReason(c.Name), err))
	}
	return false, fmt.Errorf("relay: no relay took a session to %s: %w", d.Short(), errors.Join(errs...))
}

// live reports whether d has a relayed path that heard from it lately, or
// one set up so lately that d has not had the time to send over it, and
// if so moves d onto it (a direct path that won may have died since).
//
// A fresh path counts if this device asked for it: the other end consented
// to it, and asking the relay again would replace it under a stream being
// opened over it (a "kith relay --echo" racing the reach service's
// fallback). One this device consented to does not: its offer came from
// the relay alone, and a relay offering sessions again and again must not
// keep us on paths that carry nothing.
func (r *relayService) live(d seed.DevicePublic) bool {
	r.mu.Lock()
	p, idle := r.peers[d], r.releaseIdle
	r.mu.Unlock()
	if p == nil {
		return false
	}
	for _, rt := range r.a.tr.RelayRoutes() {
		if rt.Session != p.id {
			continue
		}
		heard := !rt.LastIn.IsZero() && time.Since(rt.LastIn) < idle
		fresh := p.asked && rt.LastIn.IsZero() && time.Since(rt.Added) < idle
		if heard || fresh {
			r.moveTo(d, p.virt)
			return true
		}
	}
	return false
}

// relayCandidates are the devices that might relay to d: online, reached
// directly, own devices first, then friends', in the roster's order.
func (a *Agent) relayCandidates(d seed.DevicePublic) []Peer {
	online := a.onlineSet()
	var own, friends []Peer
	for _, p := range a.book.reachable() {
		ap, err := netip.ParseAddrPort(p.Addr)
		if p.DeviceID.Equal(d) || !online[p.DeviceID] || err != nil || transport.IsRelayAddr(ap) {
			continue
		}
		if p.Kind == roster.KindOwn {
			own = append(own, p)
		} else {
			friends = append(friends, p)
		}
	}
	return append(own, friends...)
}

// ask asks relay for a session to d and installs it.
func (r *relayService) ask(ctx context.Context, relay Peer, d seed.DevicePublic) error {
	addr, err := netip.ParseAddrPort(relay.Addr)
	if err != nil {
		return fmt.Errorf("no address: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*relayAskTimeout)
	defer cancel()
	s, err := r.a.tr.OpenStream(ctx, addr, relay.DeviceID.Ed25519(), protoRelay)
	if err != nil {
		return err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	if err := writeJSON(s, relayMsg{Op: relayOpOpen, To: &d}); err != nil {
		return err
	}
	b, err := transport.ReadFrame(s, relayFrameMax)
	if err != nil {
		return fmt.Errorf("no answer: %w", err)
	}
	ans, id, err := decodeRelayAnswer(b, true)
	if err != nil {
		return err
	}
	if !ans.OK {
		return errors.New(ans.Reason)
	}
	if err := r.install(d, id, s.Conn().RemoteAddr(), relay, true); err != nil {
		return err
	}
	r.a.log.Info("relay: path through a relay", "peer", d.Short(), "via", relay.Name)
	return nil
}

// run is the relay's keeper: it forgets silent sessions, refreshes the
// relayed paths in use and releases those no longer used (a direct or
// punched path won, or the peer is gone).
func (r *relayService) run(ctx context.Context) error {
	t := time.NewTicker(relayTick)
	defer t.Stop()
	defer r.saveQuota()
	var saved time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := r.a.cfg.Now()
		r.tick(now)
		if now.Sub(saved) >= persistEvery || now.Before(saved) {
			r.saveQuota() // at most one write per persistEvery, and at the end
			saved = now
		}
	}
}

func (r *relayService) tick(now time.Time) {
	ros := r.a.book.rosterNow()
	r.mu.Lock()
	releaseIdle := r.releaseIdle
	for id, s := range r.sessions {
		_, okA := ros.Reachable(s.ends[0].dev)
		_, okB := ros.Reachable(s.ends[1].dev)
		if s.ready && (now.Sub(s.last) >= r.sessionIdle || !okA || !okB) {
			delete(r.sessions, id)
			r.a.log.Info("relay: session ended", "session", sessionString(id)[:8], "from", s.ends[0].dev.Short(), "to", s.ends[1].dev.Short(),
				"bytes", s.bytes, "dropped", s.dropped, "lasted", now.Sub(s.created).Round(time.Second).String())
		}
	}
	peers := make(map[seed.DevicePublic]relayedPeer, len(r.peers))
	for d, p := range r.peers {
		peers[d] = *p
	}
	r.mu.Unlock()

	routes := map[uint64]transport.RelayRoute{}
	for _, rt := range r.a.tr.RelayRoutes() {
		routes[rt.Session] = rt
	}
	ids := make([]seed.DevicePublic, 0, len(peers))
	for d := range peers {
		ids = append(ids, d)
	}
	sort.Slice(ids, func(i, j int) bool { return slices.Compare(ids[i][:], ids[j][:]) < 0 })
	for _, d := range ids {
		p := peers[d]
		rt, routed := routes[p.id]
		cur, known := r.a.book.peerFor(d)
		inUse := known && routed && cur.Addr == p.virt.String()
		last := rt.Added
		for _, t := range []time.Time{rt.LastIn, rt.LastOut} {
			if t.After(last) {
				last = t
			}
		}
		switch {
		case inUse && now.Sub(p.lastRefresh) >= relayRefresh:
			_ = r.a.tr.WriteDatagram(transport.AppendRelayHeader(nil, transport.RelayRefresh, p.id), rt.Relay)
			r.mu.Lock()
			if q := r.peers[d]; q != nil && q.id == p.id {
				q.lastRefresh = now
			}
			r.mu.Unlock()
		case !inUse && (!routed || !known || time.Since(last) >= releaseIdle):
			r.release(d, p.id)
		}
	}
}

// release drops the relayed path to d of session id.
func (r *relayService) release(d seed.DevicePublic, id uint64) {
	r.a.tr.RemoveRelayRoute(id)
	r.mu.Lock()
	if q := r.peers[d]; q != nil && q.id == id {
		delete(r.peers, d)
	}
	r.mu.Unlock()
	r.a.log.Info("relay: released a relayed path", "peer", d.Short())
}
