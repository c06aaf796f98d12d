// Package portmap asks the home router for a UDP port mapping of the
// agent's port, so that peers outside can reach it at the router's public
// address: with NAT-PMP (RFC 6886, github.com/jackpal/go-nat-pmp), else
// with UPnP IGD (github.com/huin/goupnp). A [Mapper] is a service: Run maps
// the port, renews the mapping halfway through its lifetime, retries after
// a failure, and deletes the mapping when it returns.
//
// PCP (RFC 6887) is not spoken: a router that speaks only PCP gives no
// mapping, and Status says why.
package portmap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	natpmp "github.com/jackpal/go-nat-pmp"
)

// Config configures a Mapper.
type Config struct {
	// Port is the internal UDP port to map (the agent's). Required.
	Port uint16
	// Gateway is the router to ask. Default: the default route's gateway
	// (DefaultGateway), looked up at every attempt.
	Gateway netip.Addr
	// Lifetime is the lifetime asked for. Default 2 hours (RFC 6886's
	// recommendation); the router may grant less.
	Lifetime time.Duration
	// Timeout bounds one request, retransmissions included. Default 3 s.
	Timeout time.Duration
	// Retry is how long to wait after a failure before asking again.
	// Default 5 minutes.
	Retry time.Duration
	// NoUPnP leaves UPnP IGD out: only NAT-PMP is asked.
	NoUPnP bool
	// Logger receives what happens. Default: discard.
	Logger *slog.Logger

	// upnpRoot, in tests, is the URL of the gateway's UPnP description,
	// instead of an SSDP search.
	upnpRoot string
}

// Defaults.
const (
	DefaultLifetime = 2 * time.Hour
	DefaultTimeout  = 3 * time.Second
	DefaultRetry    = 5 * time.Minute
	// minRenew is the shortest wait before a renewal, whatever lifetime a
	// router grants.
	minRenew = time.Second
)

// ProtoNATPMP names NAT-PMP in Status.
const ProtoNATPMP = "nat-pmp"

// Status is what a Mapper has, or why it has nothing.
type Status struct {
	Protocol string         // ProtoNATPMP or ProtoUPnP when mapped
	Gateway  netip.Addr     // the router asked, if any
	External netip.AddrPort // the mapped public address; invalid when none
	Lifetime time.Duration  // granted
	Expires  time.Time      // when the mapping lapses unless renewed
	// Err says why there is no mapping: no gateway, the router refused or
	// did not answer, or it is not tried yet.
	Err string
}

// Mapper keeps one UDP port mapping. Its methods are safe for concurrent
// use.
type Mapper struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	st      Status // guarded by mu
	running bool   // guarded by mu
}

// New makes a Mapper; it asks nothing until Run.
func New(cfg Config) (*Mapper, error) {
	if cfg.Port == 0 {
		return nil, errors.New("portmap: Config.Port is required")
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Retry <= 0 {
		cfg.Retry = DefaultRetry
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Mapper{cfg: cfg, log: cfg.Logger, st: Status{Err: "not tried yet"}}, nil
}

// External returns the mapped public address, if a mapping is live.
func (m *Mapper) External() (netip.AddrPort, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.st.External.IsValid() || !time.Now().Before(m.st.Expires) {
		return netip.AddrPort{}, false
	}
	return m.st.External, true
}

// Status returns the mapping, or why there is none.
func (m *Mapper) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st
}

// mapping is one granted mapping, whichever the protocol.
type mapping struct {
	proto    string
	external netip.AddrPort
	lifetime time.Duration // 0: permanent (UPnP lease 0)
	renew    time.Duration // when to ask again
	remove   func() error  // deletes it, within Config.Timeout
}

// Run keeps the mapping until ctx ends, then deletes it and returns nil.
// A request in flight when ctx ends finishes first (at most Timeout for
// NAT-PMP; a 2 s search and Timeout for UPnP), and the deletion takes at
// most Timeout more. It
// returns an error only if it is running already.
func (m *Mapper) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return errors.New("portmap: Run called twice")
	}
	m.running = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.running = false
		m.mu.Unlock()
	}()
	t := time.NewTimer(0)
	defer t.Stop()
	var held *mapping
	for {
		select {
		case <-ctx.Done():
			m.unmap(held)
			return nil
		case <-t.C:
		}
		mp, wait := m.attempt(held)
		if mp == nil && held != nil {
			m.unmap(held) // lost or refused on renewal: let the router forget it too
		}
		held = mp
		t.Reset(wait)
	}
}

// attempt asks for the mapping once, renewing held's protocol first if
// there is one, and returns the mapping it got, if any, and when to ask
// next.
func (m *Mapper) attempt(held *mapping) (*mapping, time.Duration) {
	gw := m.cfg.Gateway
	if !gw.IsValid() {
		var err error
		if gw, err = DefaultGateway(); err != nil {
			m.fail(netip.Addr{}, err)
			return nil, m.cfg.Retry
		}
	}
	tries := []struct {
		proto string
		fn    func(netip.Addr) (*mapping, error)
	}{{ProtoNATPMP, m.natpmpMap}, {ProtoUPnP, m.upnpMap}}
	if m.cfg.NoUPnP {
		tries = tries[:1]
	}
	if held != nil && held.proto == ProtoUPnP {
		tries[0], tries[1] = tries[1], tries[0]
	}
	var errs []error
	for _, tr := range tries {
		mp, err := tr.fn(gw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", tr.proto, err))
			continue
		}
		m.granted(gw, mp, held)
		return mp, mp.renew
	}
	m.fail(gw, errors.Join(errs...))
	return nil, m.cfg.Retry
}

// natpmpMap asks the gateway gw for the mapping over NAT-PMP.
func (m *Mapper) natpmpMap(gw netip.Addr) (*mapping, error) {
	c := natpmp.NewClientWithTimeout(net.IP(gw.AsSlice()), m.cfg.Timeout)
	ext, err := c.GetExternalAddress()
	if err != nil {
		return nil, fmt.Errorf("asking %s for its external address: %w", gw, err)
	}
	res, err := c.AddPortMappingWithDuration("udp", int(m.cfg.Port), int(m.cfg.Port), m.cfg.Lifetime)
	if err != nil {
		return nil, fmt.Errorf("asking %s to map UDP port %d: %w", gw, m.cfg.Port, err)
	}
	ip := netip.AddrFrom4(ext.ExternalIPAddress)
	life := time.Duration(res.PortMappingLifetimeInSeconds) * time.Second
	if res.MappedExternalPort == 0 || life <= 0 || ip.IsUnspecified() || res.InternalPort != m.cfg.Port {
		return nil, fmt.Errorf("%s granted an unusable mapping (external %s:%d for internal port %d, %v)", gw, ip, res.MappedExternalPort, res.InternalPort, life)
	}
	port := m.cfg.Port
	return &mapping{
		proto: ProtoNATPMP, external: netip.AddrPortFrom(ip, res.MappedExternalPort), lifetime: life,
		renew: max(life/2, minRenew),
		remove: func() error {
			_, err := c.AddPortMapping("udp", int(port), 0, 0)
			return err
		},
	}, nil
}

// granted records a new or renewed mapping.
func (m *Mapper) granted(gw netip.Addr, mp *mapping, held *mapping) {
	expires := time.Now().Add(mp.lifetime)
	if mp.lifetime == 0 {
		expires = time.Now().Add(2 * mp.renew)
	}
	m.mu.Lock()
	m.st = Status{Protocol: mp.proto, Gateway: gw, External: mp.external, Lifetime: mp.lifetime, Expires: expires}
	m.mu.Unlock()
	if held != nil && held.external == mp.external && held.proto == mp.proto {
		m.log.Debug("portmap: mapping renewed", "protocol", mp.proto, "external", mp.external.String(), "lifetime", mp.lifetime)
		return
	}
	m.log.Info("portmap: port mapped", "protocol", mp.proto, "gateway", gw.String(), "external", mp.external.String(), "lifetime", mp.lifetime)
}

// fail records why there is no mapping.
func (m *Mapper) fail(gw netip.Addr, err error) {
	m.mu.Lock()
	had := m.st.External.IsValid()
	m.st = Status{Gateway: gw, Err: err.Error()}
	m.mu.Unlock()
	if had {
		m.log.Info("portmap: mapping lost", "err", err)
	} else {
		m.log.Debug("portmap: no mapping", "err", err)
	}
}

// unmap deletes held, if any.
func (m *Mapper) unmap(held *mapping) {
	m.mu.Lock()
	if m.st.External.IsValid() {
		m.st = Status{Gateway: m.st.Gateway, Err: "stopped"}
	}
	m.mu.Unlock()
	if held == nil {
		return
	}
	if err := held.remove(); err != nil {
		m.log.Debug("portmap: deleting the mapping", "protocol", held.proto, "err", err)
		return
	}
	m.log.Info("portmap: mapping deleted", "protocol", held.proto)
}
