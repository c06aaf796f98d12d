package web

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// DefaultAddr is where "kith run" serves the console unless told
// otherwise. A fixed port keeps the console's origin the same from one run
// to the next, so the browser remembers that it may use the camera; when
// the port is taken (another agent on this machine), [Listen] falls back
// to a free one, and "kith web" finds it by asking the agent.
const DefaultAddr = "127.0.0.1:7118"

// Off is the --web value that serves no console.
const Off = "off"

// ParseAddr checks a --web value: "off", or HOST:PORT where HOST is an IP
// address or localhost (PORT 0 picks a free port). It returns the address
// to bind ("" for off), and whether it exposes the console beyond this
// machine.
func ParseAddr(s string) (addr string, exposed bool, err error) {
	if s == Off {
		return "", false, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", false, fmt.Errorf("%q is not HOST:PORT (for example %s, or off)", s, DefaultAddr)
	}
	if strings.EqualFold(host, "localhost") {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return "", false, fmt.Errorf("%q: the host must be an IP address or localhost (for example %s)", s, DefaultAddr)
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(ip.String(), port))
	if err != nil {
		return "", false, fmt.Errorf("%q: %v", s, err)
	}
	return ap.String(), !ip.IsLoopback(), nil
}

// Listen binds the console's TCP port at addr. With fallback, a port in use
// gives way to a free port on the same host.
func Listen(addr string, fallback bool) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil && fallback && errors.Is(err, syscall.EADDRINUSE) {
		host, _, _ := net.SplitHostPort(addr)
		l, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		return nil, fmt.Errorf("web: listening on %s: %w", addr, err)
	}
	return l, nil
}
