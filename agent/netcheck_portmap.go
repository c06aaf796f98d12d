package agent

import (
	"fmt"
	"net/netip"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/portmap"
)

// Config.PortMap values.
const (
	PortMapOn  = "on"
	PortMapOff = "off"
)

// newPortMapper makes the router port mapper for the agent's socket, or
// says why there is none: turned off, a socket the agent did not bind
// (an in-memory network), or one bound to loopback, which no router can
// forward to.
func (a *Agent) newPortMapper() (*portmap.Mapper, string) {
	la := a.Addr()
	switch {
	case a.cfg.PortMap == PortMapOff:
		return nil, "off (kith run --portmap=off)"
	case a.udp == nil:
		return nil, "off: the agent runs on a socket it was given"
	case la.Addr().IsLoopback():
		return nil, "off: listening on loopback " + la.String()
	}
	m, err := portmap.New(portmap.Config{Port: la.Port(), Logger: a.log.With("service", "portmap")})
	if err != nil {
		return nil, err.Error()
	}
	return m, ""
}

// portMapped is the router's mapping of our port, if one is live. (The
// candidates of rendezvous take it from here.)
func (a *Agent) portMapped() (netip.AddrPort, bool) {
	if a.portmap == nil {
		return netip.AddrPort{}, false
	}
	return a.portmap.External()
}

// portMapping is the port mapping as "kith netcheck" shows it.
func (a *Agent) portMapping() control.PortMapping {
	if a.portmap == nil {
		return control.PortMapping{Error: a.portmapOff}
	}
	st := a.portmap.Status()
	pm := control.PortMapping{Protocol: st.Protocol, Error: st.Err}
	if st.Gateway.IsValid() {
		pm.Gateway = st.Gateway.String()
	}
	if st.External.IsValid() {
		pm.External = st.External.String()
		pm.Lifetime = st.Lifetime.String()
		t := st.Expires.UTC()
		pm.ExpiresAt = &t
	}
	return pm
}

// validPortMap checks Config.PortMap.
func validPortMap(s string) error {
	switch s {
	case "", PortMapOn, PortMapOff:
		return nil
	}
	return fmt.Errorf("agent: port mapping %q is neither %q nor %q", s, PortMapOn, PortMapOff)
}
