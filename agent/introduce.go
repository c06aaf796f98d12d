package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
	"golang.org/x/time/rate"
)

// Rendezvous: device A, which cannot reach device B, asks a device I that
// both reach (an own always-on device, or a friend of both) to introduce
// it. On stream protocol 0x02:
//
//	A → I  request {peer: B, cands: A's candidates, signed for B}
//	I → B  offer   {peer: A, cands: A's set, seen: where I sees A, at}
//	B → I  answer  {cands: B's candidates, signed for A}
//	I → A  reply   {cands: B's set, seen: where I sees B, at}
//
// or an answer or reply {code, error} that says why not. "at" is the
// instant both start punching (punch.go), in Unix nanoseconds by I's
// clock; each side converts it with the clock offset presence measured to
// I. I opens the stream to B at B's presence address, which B's own
// heartbeats keep fresh. I checks its policy (Config.Introduce) and that
// it knows both; B checks that A is a device it knows, own or a friend's,
// neither blocked nor revoked, and that A's set is signed by A, for B,
// and newer than any it took (candidates.go).

// protoIntroduce is the stream protocol of introductions.
const protoIntroduce byte = 0x02

// Introduction policies (kith run --introduce).
const (
	// IntroduceOwn, the default: introduce two devices of which at least
	// one is this user's own, the other own or a friend's. Neither side
	// learns anything of the other that it did not know: a friend already
	// holds this user's devices.
	IntroduceOwn = "own"
	// IntroduceFriends: also introduce two friends' devices to each other,
	// which tells each that the other is there and where: opt in.
	IntroduceFriends = "friends"
	// IntroduceOff: introduce nobody.
	IntroduceOff = "off"
)

// Limits of introductions.
const (
	maxIntroFrame   = 2048
	introTimeout    = 10 * time.Second
	maxIntroError   = 200
	introRatePerSec = 1 // per requester
	introBurst      = 6
	maxIntroLead    = 2 * time.Second
	minIntroLead    = 100 * time.Millisecond
)

// Refusal codes, in answers and replies.
const (
	introOffline = "offline" // the device to meet is not online at the introducer
	introPolicy  = "policy"  // the introducer's policy refuses this pair
	introUnknown = "unknown" // the introducer or the device to meet does not know the other
	introRate    = "rate"    // too many introductions asked
	introBad     = "bad"     // a malformed or refused candidate set
	introFailed  = "failed"  // the device to meet did not answer
)

// introFrame is every frame of the protocol; Op says which.
type introFrame struct {
	Op    string            `json:"op"`
	Peer  seed.DevicePublic `json:"peer,omitzero"`
	Cands []byte            `json:"cands,omitempty"`
	Seen  string            `json:"seen,omitempty"`
	At    int64             `json:"at,omitempty"`
	Code  string            `json:"code,omitempty"`
	Error string            `json:"error,omitempty"`
}

// errIntroduction is an introduction refused or failed; Code says why.
type errIntroduction struct{ Code, Reason string }

func (e *errIntroduction) Error() string {
	return "introduction refused (" + e.Code + "): " + e.Reason
}

func introRefusal(code, format string, args ...any) *errIntroduction {
	return &errIntroduction{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// decodeIntroFrame parses a frame and checks what its op needs.
func decodeIntroFrame(b []byte) (introFrame, error) {
	var f introFrame
	if len(b) > maxIntroFrame {
		return f, fmt.Errorf("introduction frame of %d bytes", len(b))
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("introduction frame: %w", err)
	}
	if len(f.Error) > maxIntroError || len(f.Code) > 16 {
		return f, errors.New("introduction frame: error too long")
	}
	refused := f.Code != "" || f.Error != ""
	var zero seed.DevicePublic
	switch f.Op {
	case "request", "offer":
		if f.Peer == zero || len(f.Cands) == 0 || refused {
			return f, fmt.Errorf("introduction %s without a device or candidates", f.Op)
		}
	case "answer", "reply":
		if !refused && len(f.Cands) == 0 {
			return f, fmt.Errorf("introduction %s without candidates", f.Op)
		}
	default:
		return f, fmt.Errorf("introduction frame of unknown op %q", f.Op)
	}
	if f.Op == "offer" || (f.Op == "reply" && !refused) {
		ap, err := netip.ParseAddrPort(f.Seen)
		if err != nil || !usableAddr(ap) {
			return f, fmt.Errorf("introduction %s: observed address %q", f.Op, f.Seen)
		}
		if f.At <= 0 {
			return f, fmt.Errorf("introduction %s without a start instant", f.Op)
		}
	}
	return f, nil
}

func readIntroFrame(s *transport.Stream) (introFrame, error) {
	b, err := transport.ReadFrame(s, maxIntroFrame)
	if err != nil {
		return introFrame{}, err
	}
	return decodeIntroFrame(b)
}

// introducer is the state of introductions: the rate limit per requester
// and the guard against replayed candidate sets. Safe for concurrent use.
type introducer struct {
	guard candidateGuard

	mu    sync.Mutex
	rates map[seed.DevicePublic]*rate.Limiter // guarded by mu
}

// allow spends one introduction of the requester's budget.
func (in *introducer) allow(d seed.DevicePublic) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.rates == nil {
		in.rates = map[seed.DevicePublic]*rate.Limiter{}
	}
	l := in.rates[d]
	if l == nil {
		if len(in.rates) >= maxGuarded {
			clear(in.rates)
		}
		l = rate.NewLimiter(introRatePerSec, introBurst)
		in.rates[d] = l
	}
	return l.Allow()
}

// serveIntroduce serves a stream of protocol 0x02: a request (we are the
// introducer) or an offer (we are the device to meet).
func (a *Agent) serveIntroduce(ctx context.Context, s *transport.Stream) {
	from, ok := devOf(s.PeerKey())
	if !ok {
		return
	}
	f, err := readIntroFrame(s)
	if err != nil {
		a.log.Debug("introduction: bad frame", "from", from.Short(), "err", err)
		return
	}
	switch f.Op {
	case "request":
		a.introduceAsked(ctx, s, from, f)
	case "offer":
		a.offered(ctx, s, from, f)
	}
}

// relation says how this device knows d: own, friend, or not at all.
func (a *Agent) relation(d seed.DevicePublic) (roster.Kind, Peer, bool) {
	p, ok := a.book.peerFor(d)
	if !ok {
		return "", Peer{}, false
	}
	return p.Kind, p, true
}

// introducePolicy decides whether we introduce the devices of kinds ka
// and kb; nil if we do.
func (a *Agent) introducePolicy(ka, kb roster.Kind) *errIntroduction {
	switch a.cfg.Introduce {
	case IntroduceOff:
		return introRefusal(introPolicy, "this device introduces nobody (--introduce off)")
	case IntroduceFriends:
		return nil
	}
	if ka != roster.KindOwn && kb != roster.KindOwn {
		return introRefusal(introPolicy, "this device introduces only its own user's devices (--introduce own); both are friends' devices")
	}
	return nil
}

// introduceAsked is the introducer's side: check, pass the offer to the
// device to meet, and hand its answer back.
func (a *Agent) introduceAsked(ctx context.Context, s *transport.Stream, from seed.DevicePublic, f introFrame) {
	reply, err := a.introduceFor(ctx, s, from, f)
	if err != nil {
		var ie *errIntroduction
		if !errors.As(err, &ie) {
			ie = introRefusal(introFailed, "%v", err)
		}
		a.log.Debug("introduction refused", "from", from.Short(), "to", f.Peer.Short(), "code", ie.Code, "reason", ie.Reason)
		reply = introFrame{Op: "reply", Code: ie.Code, Error: truncate(ie.Reason, maxIntroError)}
	}
	if err := writeJSON(s, reply); err != nil {
		a.log.Debug("introduction: writing the reply", "to", from.Short(), "err", err)
	}
}

func (a *Agent) introduceFor(ctx context.Context, s *transport.Stream, from seed.DevicePublic, f introFrame) (introFrame, error) {
	ka, _, okA := a.relation(from)
	kb, pb, okB := a.relation(f.Peer)
	switch {
	case !okA:
		return introFrame{}, introRefusal(introUnknown, "the introducer does not know the asking device")
	case !okB || f.Peer.Equal(from):
		return introFrame{}, introRefusal(introUnknown, "the introducer does not know device %s", f.Peer.Short())
	}
	if r := a.introducePolicy(ka, kb); r != nil {
		return introFrame{}, r
	}
	if !a.intro.allow(from) {
		return introFrame{}, introRefusal(introRate, "too many introductions asked; try again later")
	}
	var st struct {
		online   bool
		rtt      time.Duration
		rttAsker time.Duration
	}
	for _, ps := range a.presence.Status() {
		if ps.Device.Equal(f.Peer) {
			st.online, st.rtt = ps.Online, ps.RTT
		}
		if ps.Device.Equal(from) {
			st.rttAsker = ps.RTT
		}
	}
	addrB, err := netip.ParseAddrPort(pb.Addr)
	if !st.online || err != nil {
		return introFrame{}, introRefusal(introOffline, "device %s is not online at the introducer", f.Peer.Short())
	}
	seenA := s.Conn().RemoteAddr()
	lead := min(max(minIntroLead, 2*(st.rtt+st.rttAsker)+50*time.Millisecond), maxIntroLead)
	at := a.cfg.Now().Add(lead)
	ctx, cancel := context.WithTimeout(ctx, introTimeout)
	defer cancel()
	sb, err := a.tr.OpenStream(ctx, addrB, pb.DeviceID.Ed25519(), protoIntroduce)
	if err != nil {
		return introFrame{}, introRefusal(introFailed, "device %s did not answer the introducer", f.Peer.Short())
	}
	defer sb.Close()
	sb.SetDeadline(time.Now().Add(introTimeout))
	offer := introFrame{Op: "offer", Peer: from, Cands: f.Cands, Seen: seenA.String(), At: at.UnixNano()}
	if err := writeJSON(sb, offer); err != nil {
		return introFrame{}, introRefusal(introFailed, "device %s did not answer the introducer", f.Peer.Short())
	}
	ans, err := readIntroFrame(sb)
	if err != nil || ans.Op != "answer" {
		return introFrame{}, introRefusal(introFailed, "device %s did not answer the introducer", f.Peer.Short())
	}
	if ans.Code != "" {
		return introFrame{}, introRefusal(ans.Code, "device %s: %s", f.Peer.Short(), strconv.Quote(ans.Error))
	}
	a.log.Info("introduced", "asker", from.Short(), "to", f.Peer.Short())
	return introFrame{Op: "reply", Cands: ans.Cands, Seen: sb.Conn().RemoteAddr().String(), At: at.UnixNano()}, nil
}

// offered is the side of the device to meet: check the asker and its
// candidates, answer with ours, and punch at the instant.
func (a *Agent) offered(ctx context.Context, s *transport.Stream, via seed.DevicePublic, f introFrame) {
	plan, err := a.takeOffer(via, f)
	if err != nil {
		var ie *errIntroduction
		if !errors.As(err, &ie) {
			ie = introRefusal(introBad, "%v", err)
		}
		a.log.Debug("introduction offer refused", "via", via.Short(), "peer", f.Peer.Short(), "reason", ie.Reason)
		writeJSON(s, introFrame{Op: "answer", Code: ie.Code, Error: truncate(ie.Reason, maxIntroError)})
		return
	}
	mine := signCandidates(a.dev.Device.Ed25519(), f.Peer, a.cfg.Now(), a.candidates())
	if err := writeJSON(s, introFrame{Op: "answer", Cands: mine}); err != nil {
		return
	}
	// The punch outlives the stream, which is done: it runs on the reach
	// service's goroutines, and the stream's slot is free at once.
	a.reach.spawn(func() { a.punch(ctx, plan) })
}

// takeOffer checks an offer and makes the punch plan from it.
func (a *Agent) takeOffer(via seed.DevicePublic, f introFrame) (punchPlan, error) {
	if _, _, ok := a.relation(f.Peer); !ok || f.Peer.Equal(a.dev.Cert.Device) {
		return punchPlan{}, introRefusal(introUnknown, "the device to meet does not know the asking device")
	}
	c, err := a.intro.guard.accept(f.Cands, f.Peer, a.dev.Cert.Device, a.cfg.Now())
	if err != nil {
		return punchPlan{}, introRefusal(introBad, "%v", err)
	}
	seen, _ := netip.ParseAddrPort(f.Seen)
	return a.planFrom(f.Peer, via, c.Addrs, seen, f.At), nil
}

// introduce asks the introducer via to introduce us to device to, and
// returns the punch plan from its reply.
func (a *Agent) introduce(ctx context.Context, via Peer, to seed.DevicePublic) (punchPlan, error) {
	addr, err := netip.ParseAddrPort(via.Addr)
	if err != nil {
		return punchPlan{}, fmt.Errorf("introducer %s has no address", via.DeviceID.Short())
	}
	cands := a.candidates()
	if len(cands) == 0 {
		return punchPlan{}, errors.New("this device has no candidate address")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*introTimeout)
	defer cancel()
	s, err := a.tr.OpenStream(ctx, addr, via.DeviceID.Ed25519(), protoIntroduce)
	if err != nil {
		return punchPlan{}, fmt.Errorf("asking %s for an introduction: %w", via.DeviceID.Short(), err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(2 * introTimeout))
	req := introFrame{Op: "request", Peer: to, Cands: signCandidates(a.dev.Device.Ed25519(), to, a.cfg.Now(), cands)}
	if err := writeJSON(s, req); err != nil {
		return punchPlan{}, fmt.Errorf("asking %s for an introduction: %w", via.DeviceID.Short(), err)
	}
	rep, err := readIntroFrame(s)
	if err != nil || rep.Op != "reply" {
		if err == nil {
			err = fmt.Errorf("a %q frame", rep.Op)
		}
		return punchPlan{}, fmt.Errorf("introduction through %s: %w", via.DeviceID.Short(), err)
	}
	if rep.Code != "" {
		return punchPlan{}, &errIntroduction{Code: rep.Code, Reason: strconv.Quote(rep.Error)}
	}
	c, err := a.intro.guard.accept(rep.Cands, to, a.dev.Cert.Device, a.cfg.Now())
	if err != nil {
		return punchPlan{}, introRefusal(introBad, "through %s: %v", via.DeviceID.Short(), err)
	}
	seen, _ := netip.ParseAddrPort(rep.Seen)
	return a.planFrom(to, via.DeviceID, c.Addrs, seen, rep.At), nil
}

// planFrom makes a punch plan toward peer: the address the introducer via
// sees it at first, then its candidates; the start instant at (Unix ns by
// the introducer's clock) converted to ours with the offset presence
// measured to the introducer.
func (a *Agent) planFrom(peer, via seed.DevicePublic, cands []netip.AddrPort, seen netip.AddrPort, at int64) punchPlan {
	addrs := []netip.AddrPort{}
	if usableAddr(seen) {
		addrs = append(addrs, seen)
	}
	// A peer's loopback or broadcast candidate would aim our packets at
	// this machine's own services, or everyone on our LAN: only a peer we
	// see on loopback ourselves (tests, or two agents on one machine) may
	// give loopback candidates.
	local := seen.Addr().IsLoopback()
	for _, c := range cands {
		if len(addrs) > maxCandidates {
			break
		}
		if (c.Addr().IsLoopback() && !local) || c.Addr() == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			continue
		}
		if !containsAddr(addrs, c) {
			addrs = append(addrs, c)
		}
	}
	start := time.Unix(0, at)
	for _, ps := range a.presence.Status() {
		if ps.Device.Equal(via) && ps.HaveRTT {
			start = start.Add(-ps.ClockOffset)
		}
	}
	return punchPlan{peer: peer, addrs: addrs, start: start, was: a.bookAddr(peer)}
}

func containsAddr(list []netip.AddrPort, ap netip.AddrPort) bool {
	for _, x := range list {
		if x == ap {
			return true
		}
	}
	return false
}

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
