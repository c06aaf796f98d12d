package natlab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Host is a machine of the lab: behind a router, or public.
type Host struct {
	lab *Lab
	// Name is the host's name in the test; NS its namespace.
	Name, NS string
	// Addr is the host's own (interface) address: on the LAN behind its
	// router, or on the internet for a public host.
	Addr netip.Addr
	// Router is the router the host is behind; nil for a public host.
	Router *Router
}

// Public returns the address the internet sees this host's packets come
// from: its router's WAN address, or its own for a public host. It may be
// called from any goroutine.
func (h *Host) Public() netip.Addr {
	if h.Router == nil {
		return h.Addr
	}
	return h.Router.WAN()
}

// Prefix is the command that runs a program inside the host's namespace:
// append the program and its arguments. "ip netns exec" execs the program
// in place, so signals and the exit status are the program's own.
func (h *Host) Prefix() []string { return []string{ipPath, "netns", "exec", h.NS} }

// Command returns a command that runs name with args inside the host's
// namespace. Whatever it leaves running is killed when the lab is
// removed.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, ipPath, append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// ListenUDP opens a UDP socket inside the host's namespace, from this
// process, on addr ("host:port"; ":0" for any port on every address). The
// socket stays in that namespace for its life. The caller closes it. It
// may be called from any goroutine.
func (h *Host) ListenUDP(addr string) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := inNetns(h.NS, func() error {
		ua, err := net.ResolveUDPAddr("udp4", addr)
		if err != nil {
			return err
		}
		c, err = net.ListenUDP("udp4", ua)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("natlab: listening on %s in %s: %w", addr, h.Name, err)
	}
	return c, nil
}

// inNetns runs f on an OS thread that has entered namespace ns, and puts
// the thread back. Sockets f makes belong to ns for good; files under
// /proc/sys/net it opens are ns's.
func inNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// If the thread cannot be put back, it stays locked, and the
		// runtime ends it with this goroutine.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns back from %s: %w", ns, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// sysctl writes value to /proc/sys/key inside ns.
func sysctl(ns, key, value string) error {
	err := inNetns(ns, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
	if err != nil {
		return fmt.Errorf("sysctl %s=%s in %s: %w", key, value, ns, err)
	}
	return nil
}

// Do runs f on an OS thread inside the host's namespace, for what
// [Host.ListenUDP] does not cover (a multicast socket, say). Sockets f
// makes stay in the namespace. It may be called from any goroutine.
func (h *Host) Do(f func() error) error { return inNetns(h.NS, f) }
