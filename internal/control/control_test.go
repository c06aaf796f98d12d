package control

import (
	"context"
	"errors"
	"github.com/kith-project/kith/seed"
	"os"
	"strings"
	"testing"
	"time"
)

// fake is a Backend that records what it was asked.
type fake struct {
	ttl    time.Duration
	action FriendAction
}

func (f *fake) ID(context.Context) (IDResult, error) {
	return IDResult{UserID: seed.UserPublic{1}, Name: "n"}, nil
}
func (f *fake) Status(context.Context) (Status, error) {
	return Status{DeviceID: seed.DevicePublic{2}, Peers: []PeerStatus{{DeviceID: seed.DevicePublic{3}, Online: true}}}, nil
}
func (f *fake) PairShow(_ context.Context, ttl time.Duration) (ShowResult, error) {
	f.ttl = ttl
	return ShowResult{Code: "KITH1:x"}, nil
}
func (f *fake) PairScan(_ context.Context, code string) (ScanResult, error) {
	switch code {
	case "":
		return ScanResult{}, &Error{Kind: KindBadInput, Message: "no code", Reason: "empty"}
	case "fail":
		return ScanResult{}, errors.New("it failed")
	}
	return ScanResult{SAS: strings.ToUpper(code), Status: PairPaired}, nil
}
func (f *fake) PairWait(_ context.Context, code string) (ScanResult, error) {
	return ScanResult{SAS: code, Status: PairPaired}, nil
}
func (f *fake) Friends(context.Context) ([]FriendView, error) {
	return []FriendView{{UserID: seed.UserPublic{4}, Devices: []DeviceView{}}}, nil
}
func (f *fake) Relay(_ context.Context, req RelayRequest) (RelayResult, error) {
	return RelayResult{DeviceID: seed.DevicePublic{5}, Via: req.Via, Path: "relay"}, nil
}
func (f *fake) FriendAction(_ context.Context, action FriendAction, user string) (FriendStatus, error) {
	f.action = action
	if user == "nobody" {
		return FriendStatus{}, &Error{Kind: KindNotFound, Message: "no friend nobody"}
	}
	return FriendStatus{UserID: seed.UserPublic{4}, Status: string(action)}, nil
}

func TestRoundTripAndErrors(t *testing.T) {
	home, err := os.MkdirTemp("", "kc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(home)
	c := NewClient(home)
	_, err = c.ID(context.Background())
	var na *NoAgentError
	if !errors.Is(err, ErrNoAgent) || !errors.As(err, &na) || na.Home != home || err.Error() != "no agent is running for "+home {
		t.Fatalf("without an agent: %v", err)
	}
	l, err := Listen(home)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(SocketPath(home)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
	b := &fake{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, NewHandler(b)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	if id, err := c.ID(ctx); err != nil || id.UserID != (seed.UserPublic{1}) {
		t.Fatalf("ID: %v %+v", err, id)
	}
	if st, err := c.Status(ctx); err != nil || st.DeviceID != (seed.DevicePublic{2}) {
		t.Fatalf("Status: %v %+v", err, st)
	} else if p, ok := st.Peer(seed.DevicePublic{3}); !ok || !p.Online {
		t.Fatalf("Status.Peer: %+v %v", p, ok)
	}
	if res, err := c.PairShow(ctx, time.Minute); err != nil || res.Code != "KITH1:x" || b.ttl != time.Minute {
		t.Fatalf("PairShow: %v %+v, ttl %v", err, res, b.ttl)
	}
	if res, err := c.PairScan(ctx, "kith"); err != nil || res.SAS != "KITH" {
		t.Fatalf("PairScan: %v %+v", err, res)
	}
	if res, err := c.PairWait(ctx, "K"); err != nil || res.SAS != "K" || res.Status != PairPaired {
		t.Fatalf("PairWait: %v %+v", err, res)
	}
	if fs, err := c.Friends(ctx); err != nil || len(fs) != 1 || fs[0].UserID != (seed.UserPublic{4}) {
		t.Fatalf("Friends: %v %+v", err, fs)
	}
	for _, action := range FriendActions {
		if res, err := c.FriendAction(ctx, action, "u2"); err != nil || res.Status != string(action) || b.action != action {
			t.Fatalf("FriendAction %s: %v %+v", action, err, res)
		}
	}
	if _, err := c.FriendAction(ctx, "befriend", "u2"); err == nil {
		t.Fatal("an unknown friend action was sent")
	}

	_, err = c.PairScan(ctx, "")
	var ce *Error
	if !BadInput(err) || !errors.As(err, &ce) || ce.Reason != "empty" {
		t.Fatalf("bad input: %v", err)
	}
	_, err = c.PairScan(ctx, "fail")
	if err == nil || BadInput(err) || err.Error() != "it failed" {
		t.Fatalf("failure: %v", err)
	}
	_, err = c.FriendAction(ctx, FriendRemove, "nobody")
	if !errors.As(err, &ce) || ce.Kind != KindNotFound || BadInput(err) {
		t.Fatalf("not found: %v", err)
	}
}

func TestLongSocketPath(t *testing.T) {
	home := "/" + strings.Repeat("h", 120)
	_, err := Listen(home)
	var se *SocketPathError
	if !errors.As(err, &se) || se.Path != SocketPath(home) {
		t.Fatalf("got %v, want a SocketPathError", err)
	}
}

func (f *fake) Devices(context.Context) ([]OwnDevice, error) { return nil, nil }

func (f *fake) DevicesRevoke(context.Context, RevokeRequest) (RevokeResult, error) {
	return RevokeResult{}, nil
}
