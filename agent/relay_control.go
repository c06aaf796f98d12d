package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/seed"
)

// Relay serves "kith relay DEVICE [--via NAME] [--echo TEXT]": it sets up
// (or keeps) a relayed path to the device and, with an echo, sends the text
// over it and back.
func (c controlAPI) Relay(ctx context.Context, req control.RelayRequest) (control.RelayResult, error) {
	a := c.a
	if len(req.Echo) > control.MaxRelayEcho {
		return control.RelayResult{}, badInput("an echo is at most %d bytes; this one has %d", control.MaxRelayEcho, len(req.Echo))
	}
	d, err := a.resolveDevice(req.Device)
	if err != nil {
		return control.RelayResult{}, err
	}
	if req.Via == "" {
		ok, err := a.relayTo(ctx, d.DeviceID)
		if err != nil {
			return control.RelayResult{}, err
		}
		if !ok {
			return control.RelayResult{}, errors.New("no own device or friend's device is online to relay through")
		}
	} else {
		via, err := a.resolveDevice(req.Via)
		if err != nil {
			return control.RelayResult{}, err
		}
		if via.DeviceID.Equal(d.DeviceID) {
			return control.RelayResult{}, badInput("a device cannot relay to itself: name another device with --via")
		}
		if err := a.relayVia(ctx, d.DeviceID, via); err != nil {
			return control.RelayResult{}, fmt.Errorf("relay through %s: %w", clipReason(via.Name), err)
		}
	}
	a.relay.mu.Lock()
	p := a.relay.peers[d.DeviceID]
	a.relay.mu.Unlock()
	if p == nil {
		return control.RelayResult{}, errors.New("the relayed path was released meanwhile; try again")
	}
	res := control.RelayResult{DeviceID: d.DeviceID, Via: p.via, Path: string(PathRelay), Addr: p.virt.String()}
	if req.Echo != "" {
		start := time.Now()
		if err := a.echo(ctx, p.virt, d.DeviceID, req.Echo); err != nil {
			return control.RelayResult{}, fmt.Errorf("echo over the relayed path: %w", err)
		}
		ms := float64(time.Since(start).Microseconds()) / 1000
		res.EchoMillis = &ms
	}
	return res, nil
}

func badInput(format string, args ...any) error {
	return &control.Error{Kind: control.KindBadInput, Message: fmt.Sprintf(format, args...)}
}

// resolveDevice finds a known device, own or a friend's, by its full ID,
// the start of its ID, or its name.
func (a *Agent) resolveDevice(s string) (Peer, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Peer{}, badInput("name a device: its name, the start of its ID, or its full ID")
	}
	if id, err := seed.ParseDevicePublic(s); err == nil {
		if p, ok := a.book.peerFor(id); ok {
			return p, nil
		}
		return Peer{}, &control.Error{Kind: control.KindNotFound, Message: fmt.Sprintf("no own device or friend's device %s (is it blocked or revoked?)", id.Short())}
	}
	var byName, byPrefix []Peer
	low := strings.ToLower(s)
	for _, p := range a.book.reachable() {
		if p.Name == s {
			byName = append(byName, p)
		}
		if len(low) >= 4 && strings.HasPrefix(p.DeviceID.ID(), low) {
			byPrefix = append(byPrefix, p)
		}
	}
	for _, m := range [][]Peer{byName, byPrefix} {
		switch len(m) {
		case 0:
		case 1:
			return m[0], nil
		default:
			return Peer{}, badInput("%d devices match %q: use the start of the device ID instead", len(m), clipReason(s))
		}
	}
	return Peer{}, &control.Error{Kind: control.KindNotFound, Message: fmt.Sprintf("no own device or friend's device is called %q or has an ID starting so", clipReason(s))}
}

// relayVia sets up a relayed path to d through the device via, or keeps a
// live one through it.
func (a *Agent) relayVia(ctx context.Context, d seed.DevicePublic, via Peer) error {
	a.relay.mu.Lock()
	p := a.relay.peers[d]
	a.relay.mu.Unlock()
	if p != nil && p.relay.Equal(via.DeviceID) && a.relay.live(d) {
		return nil
	}
	if ap, err := netip.ParseAddrPort(via.Addr); err != nil || transport.IsRelayAddr(ap) {
		return errors.New("it is not reached directly")
	}
	return a.relay.ask(ctx, via, d)
}

// echo sends text to d at addr on a relay stream and checks that it comes
// back.
func (a *Agent) echo(ctx context.Context, addr netip.AddrPort, d seed.DevicePublic, text string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*relayAskTimeout)
	defer cancel()
	s, err := a.tr.OpenStream(ctx, addr, d.Ed25519(), protoRelay)
	if err != nil {
		return err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	if err := writeJSON(s, relayMsg{Op: relayOpEcho, Text: text}); err != nil {
		return err
	}
	b, err := transport.ReadFrame(s, relayFrameMax)
	if err != nil {
		return err
	}
	ans, _, err := decodeRelayAnswer(b, false)
	switch {
	case err != nil:
		return err
	case !ans.OK:
		return errors.New(ans.Reason)
	case ans.Echo != text:
		return errors.New("the echo came back different")
	}
	return nil
}
