// Package portmap asks the home router for a UDP port mapping of the
// agent's port, with NAT-PMP (RFC 6886, github.com/jackpal/go-nat-pmp), so
// that peers outside can reach it at the router's public address. A
// [Mapper] is a service: Run maps the port, renews the mapping halfway
// through its lifetime, retries after a failure, and deletes the mapping
// when it returns.
//
// PCP (RFC 6887) and UPnP IGD are not spoken yet: a router that answers
// NAT-PMP with a PCP version error, or speaks only UPnP, gives no mapping,
// and Status says why.
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
	// Logger receives what happens. Default: discard.
	Logger *slog.Logger
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
	Protocol string         // ProtoNATPMP when mapped
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

// Run keeps the mapping until ctx ends, then deletes it and returns nil.
// A request in flight when ctx ends finishes first (at most Timeout), and
// the deletion takes at most Timeout more. It returns an error only if it
// is running already.
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
	var client *natpmp.Client
	for {
		select {
		case <-ctx.Done():
			if client != nil {
				m.unmap(client)
			}
			return nil
		case <-t.C:
		}
		c, wait := m.attempt()
		if c != nil {
			client = c
		}
		t.Reset(wait)
	}
}

// attempt asks for (or renews) the mapping once, and returns the client
// that holds it, if any, and when to ask next.
func (m *Mapper) attempt() (*natpmp.Client, time.Duration) {
	gw := m.cfg.Gateway
	if !gw.IsValid() {
		var err error
		if gw, err = DefaultGateway(); err != nil {
			m.fail(netip.Addr{}, err)
			return nil, m.cfg.Retry
		}
	}
	c := natpmp.NewClientWithTimeout(net.IP(gw.AsSlice()), m.cfg.Timeout)
	ext, err := c.GetExternalAddress()
	if err != nil {
		m.fail(gw, fmt.Errorf("asking %s for its external address: %w", gw, err))
		return nil, m.cfg.Retry
	}
	res, err := c.AddPortMappingWithDuration("udp", int(m.cfg.Port), int(m.cfg.Port), m.cfg.Lifetime)
	if err != nil {
		m.fail(gw, fmt.Errorf("asking %s to map UDP port %d: %w", gw, m.cfg.Port, err))
		return nil, m.cfg.Retry
	}
	ip := netip.AddrFrom4(ext.ExternalIPAddress)
	life := time.Duration(res.PortMappingLifetimeInSeconds) * time.Second
	if res.MappedExternalPort == 0 || life <= 0 || !ip.IsValid() || ip.IsUnspecified() || res.InternalPort != m.cfg.Port {
		m.fail(gw, fmt.Errorf("%s granted an unusable mapping (external %s:%d for internal port %d, %v)", gw, ip, res.MappedExternalPort, res.InternalPort, life))
		return nil, m.cfg.Retry
	}
	extAddr := netip.AddrPortFrom(ip, res.MappedExternalPort)
	m.mu.Lock()
	renewed := m.st.External == extAddr
	m.st = Status{Protocol: ProtoNATPMP, Gateway: gw, External: extAddr, Lifetime: life, Expires: time.Now().Add(life)}
	m.mu.Unlock()
	if renewed {
		m.log.Debug("portmap: mapping renewed", "external", extAddr.String(), "lifetime", life)
	} else {
		m.log.Info("portmap: port mapped", "gateway", gw.String(), "external", extAddr.String(), "lifetime", life)
	}
	return c, max(life/2, minRenew)
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

// unmap deletes the mapping (NAT-PMP: lifetime 0).
func (m *Mapper) unmap(c *natpmp.Client) {
	m.mu.Lock()
	had := m.st.External.IsValid()
	m.st = Status{Err: "stopped"}
	m.mu.Unlock()
	if !had {
		return
	}
	if _, err := c.AddPortMapping("udp", int(m.cfg.Port), 0, 0); err != nil {
		m.log.Debug("portmap: deleting the mapping", "err", err)
		return
	}
	m.log.Info("portmap: mapping deleted")
}
