package web

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/web"
)

// shortInvites is a backend whose invites last a minute, each with a new
// code; the rest of the API is not needed here.
type shortInvites struct {
	mu    sync.Mutex
	shown []time.Time // guarded by mu
}

var errUnused = errors.New("not used by this test")

func (b *shortInvites) ID(context.Context) (control.IDResult, error) {
	return control.IDResult{Name: "solo"}, nil
}
func (b *shortInvites) Status(context.Context) (control.Status, error) { return control.Status{}, nil }
func (b *shortInvites) PairShow(context.Context, time.Duration) (control.ShowResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.shown = append(b.shown, time.Now())
	return control.ShowResult{Code: fmt.Sprintf("KITH2:SHORT%d", len(b.shown)), ExpiresAt: time.Now().Add(time.Minute)}, nil
}
func (b *shortInvites) PairScan(context.Context, string) (control.ScanResult, error) {
	return control.ScanResult{}, errUnused
}
func (b *shortInvites) PairWait(context.Context, string) (control.ScanResult, error) {
	return control.ScanResult{}, errUnused
}
func (b *shortInvites) Friends(context.Context) ([]control.FriendView, error) { return nil, nil }
func (b *shortInvites) FriendAction(context.Context, control.FriendAction, string) (control.FriendStatus, error) {
	return control.FriendStatus{}, errUnused
}
func (b *shortInvites) Relay(context.Context, control.RelayRequest) (control.RelayResult, error) {
	return control.RelayResult{}, errUnused
}
func (b *shortInvites) Devices(context.Context) ([]control.OwnDevice, error) { return nil, nil }
func (b *shortInvites) DevicesRevoke(context.Context, control.RevokeRequest) (control.RevokeResult, error) {
	return control.RevokeResult{}, errUnused
}

// The pairing page shows a new invite before the one it shows expires.
// The console runs in this process over a backend whose invites last a
// minute, which the page replaces a minute before expiry but no sooner than
// after five seconds: after five seconds, then.
func TestInviteRefreshedBeforeExpiry(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	l, err := web.Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	be := &shortInvites{}
	s := web.New(web.Config{Backend: be}, l)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	b := newBrowser(t, "")
	b.do("logging in", chromedp.Navigate(s.LoginURL()), chromedp.WaitVisible(chromedp.CSS("#invite-qr[data-code]")))
	first := b.attr("#invite-qr", "data-code")
	b.waitJS("a new invite is shown", fmt.Sprintf(`document.querySelector("#invite-qr").dataset.code !== %q`, first))
	be.mu.Lock()
	shown := append([]time.Time(nil), be.shown...)
	be.mu.Unlock()
	if len(shown) < 2 {
		t.Fatalf("invites shown: %v", shown)
	}
	if gap := shown[1].Sub(shown[0]); gap >= time.Minute {
		t.Fatalf("the second invite came %v after the first, which lasted a minute", gap)
	}
	t.Logf("an invite of a minute was replaced after %v", shown[1].Sub(shown[0]).Round(10*time.Millisecond))
}
