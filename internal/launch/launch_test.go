package launch

import (
	"context"
	"errors"
	"fmt"
	"github.com/kith-project/kith/seed"
	"os"
	"os/signal"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
)

// The test binary doubles as a fake "kith run" when this variable is set:
// it serves the control API with fakeAgent until SIGTERM.
const fakeEnv = "LAUNCH_TEST_FAKE_AGENT"

func TestMain(m *testing.M) {
	if os.Getenv(fakeEnv) == "1" {
		os.Exit(fakeMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeMain takes "--home H run --listen L [--exit]".
func fakeMain(args []string) int {
	if len(args) < 5 || args[0] != "--home" || args[2] != "run" || args[3] != "--listen" {
		fmt.Fprintf(os.Stderr, "fake agent: bad arguments %q\n", args)
		return 2
	}
	if slices.Contains(args, "--exit") {
		fmt.Println("fake agent: exiting at once")
		return 3
	}
	l, err := control.Listen(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fmt.Println("fake agent listening on", args[4])
	if err := control.Serve(ctx, l, control.NewHandler(&fakeAgent{})); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// fakeAgent reports a peer that comes online at the third status request.
type fakeAgent struct{ asked atomic.Int32 }

func (f *fakeAgent) ID(context.Context) (control.IDResult, error) {
	return control.IDResult{UserID: seed.UserPublic{1}}, nil
}

func (f *fakeAgent) Status(context.Context) (control.Status, error) {
	n := f.asked.Add(1)
	return control.Status{Peers: []control.PeerStatus{{DeviceID: seed.DevicePublic{3}, Online: n >= 3}}}, nil
}

func (f *fakeAgent) PairShow(context.Context, time.Duration) (control.ShowResult, error) {
	return control.ShowResult{}, errors.New("not in the fake")
}

func (f *fakeAgent) PairScan(context.Context, string) (control.ScanResult, error) {
	return control.ScanResult{}, errors.New("not in the fake")
}

func (f *fakeAgent) PairWait(context.Context, string) (control.ScanResult, error) {
	return control.ScanResult{}, errors.New("not in the fake")
}

func (f *fakeAgent) Friends(context.Context) ([]control.FriendView, error) { return nil, nil }

func (f *fakeAgent) Relay(context.Context, control.RelayRequest) (control.RelayResult, error) {
	return control.RelayResult{}, errors.New("not in the fake")
}

func (f *fakeAgent) FriendAction(context.Context, control.FriendAction, string) (control.FriendStatus, error) {
	return control.FriendStatus{}, errors.New("not in the fake")
}

func spec(t *testing.T, args ...string) Spec {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	home, err := os.MkdirTemp("", "kl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	return Spec{Binary: self, Home: home, Listen: "127.0.0.1:1", Args: args, Env: append(os.Environ(), fakeEnv+"=1")}
}

func TestStartWaitStatusStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := Start(ctx, spec(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if err := p.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	st, err := WaitStatus(ctx, p.Client(), func(st control.Status) bool {
		peer, ok := st.Peer(seed.DevicePublic{3})
		return ok && peer.Online
	})
	if err != nil || len(st.Peers) != 1 || !st.Peers[0].Online {
		t.Fatalf("WaitStatus: %+v %v", st, err)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Done is open after Stop")
	}
	if p.Running() || p.Wait() != nil || p.Stop() != nil {
		t.Fatal("a stopped process still runs or reports an error")
	}
}

func TestExitBeforeReady(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := Start(ctx, spec(t, "--exit"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReady(ctx); !errors.Is(err, ErrExited) {
		t.Fatalf("WaitReady: got %v, want ErrExited", err)
	}
	var ee interface{ ExitCode() int }
	if err := p.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Wait: %v, want exit status 3", err)
	}
}

func TestWaitStatusGivesUp(t *testing.T) {
	home, err := os.MkdirTemp("", "kl")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(home)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = WaitStatus(ctx, control.NewClient(home), func(control.Status) bool { return true })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("without an agent: %v", err)
	}
}

func TestContextEndStopsTheProcess(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Start(ctx, spec(t))
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	if err := p.WaitReady(rctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-p.Done():
	case <-rctx.Done():
		p.Stop()
		t.Fatal("the process outlived its context")
	}
}

func (f *fakeAgent) Devices(context.Context) ([]control.OwnDevice, error) { return nil, nil }

func (f *fakeAgent) DevicesRevoke(context.Context, control.RevokeRequest) (control.RevokeResult, error) {
	return control.RevokeResult{}, nil
}
