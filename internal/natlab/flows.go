package natlab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Flow is one UDP flow a router's conntrack table holds: the original
// direction (Src → Dst, as the LAN host sent it) and the reply direction
// as the router rewrote it (ReplySrc → ReplyDst, where ReplyDst is the
// mapping on the WAN).
type Flow struct {
	Src, Dst           netip.AddrPort
	ReplySrc, ReplyDst netip.AddrPort
	// Packets and Bytes count what went each way, original ([0]) and
	// reply ([1]), as conntrack's accounting (on in every router) says.
	Packets, Bytes [2]uint64
}

func (f Flow) String() string {
	return fmt.Sprintf("%s→%s (reply %s→%s)", f.Src, f.Dst, f.ReplySrc, f.ReplyDst)
}

// parseFlow reads one line of conntrack's output: the first src/dst/sport/
// dport are the original direction, the second the reply's.
func parseFlow(line string) (Flow, bool) {
	var ips [2][2]string // [direction][src, dst]
	var ports [2][2]string
	var counts [2][2]uint64 // [direction][packets, bytes]
	seen := map[string]int{}
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		i := seen[k]
		if i > 1 {
			continue
		}
		switch k {
		case "src":
			ips[i][0] = v
		case "dst":
			ips[i][1] = v
		case "sport":
			ports[i][0] = v
		case "dport":
			ports[i][1] = v
		case "packets", "bytes":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return Flow{}, false
			}
			if k == "packets" {
				counts[i][0] = n
			} else {
				counts[i][1] = n
			}
		default:
			continue
		}
		seen[k]++
	}
	var ap [2][2]netip.AddrPort
	for d := range 2 {
		for e := range 2 {
			a, err := netip.ParseAddr(ips[d][e])
			if err != nil {
				return Flow{}, false
			}
			p, err := strconv.ParseUint(ports[d][e], 10, 16)
			if err != nil {
				return Flow{}, false
			}
			ap[d][e] = netip.AddrPortFrom(a, uint16(p))
		}
	}
	return Flow{Src: ap[0][0], Dst: ap[0][1], ReplySrc: ap[1][0], ReplyDst: ap[1][1],
		Packets: [2]uint64{counts[0][0], counts[1][0]}, Bytes: [2]uint64{counts[0][1], counts[1][1]}}, true
}

// Flows lists the router's UDP flows now. It may be called from any
// goroutine.
func (r *Router) Flows() ([]Flow, error) {
	out, err := run(ipPath, "netns", "exec", r.NS, ctPath, "-L", "-p", "udp")
	if err != nil {
		return nil, fmt.Errorf("natlab: conntrack -L in %s: %v: %s", r.Name, err, out)
	}
	var fs []Flow
	for line := range strings.Lines(out) {
		if f, ok := parseFlow(line); ok {
			fs = append(fs, f)
		}
	}
	return fs, nil
}

// FlowWatch records the UDP flows a router forgets (conntrack's DESTROY
// events: a flow that timed out, or was flushed), from when
// [Router.WatchExpired] started it until the lab is removed.
type FlowWatch struct {
	mu   sync.Mutex
	gone []Flow
}

// Gone returns the flows forgotten so far. It may be called from any
// goroutine.
func (w *FlowWatch) Gone() []Flow {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Flow(nil), w.gone...)
}

// WatchExpired starts recording the UDP flows router r forgets, for the
// rest of the test: a NAT mapping that timed out shows there, even if
// the next packet made the same mapping again at once.
func (r *Router) WatchExpired() *FlowWatch {
	l := r.lab
	l.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := r.command(ctx, ctPath, "-E", "-e", "DESTROY", "-p", "udp")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		l.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		l.t.Fatalf("natlab: conntrack -E in %s: %v", r.Name, err)
	}
	w := &FlowWatch{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if f, ok := parseFlow(sc.Text()); ok {
				w.mu.Lock()
				w.gone = append(w.gone, f)
				w.mu.Unlock()
			}
		}
		io.Copy(io.Discard, out)
	}()
	l.t.Cleanup(func() {
		cancel()
		<-done
		cmd.Wait()
	})
	return w
}

// command is a command that runs inside the router's namespace.
func (r *Router) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, ipPath, append([]string{"netns", "exec", r.NS, name}, args...)...)
}

// lockedLog collects a helper's output for the test's log.
type lockedLog struct {
	mu sync.Mutex
	b  []byte
}

func (w *lockedLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *lockedLog) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}
