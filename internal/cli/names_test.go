package cli

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// fakeAgent serves the local API from a fixed list of friends and records
// the friend actions asked for.
type fakeAgent struct {
	friends []control.FriendView
	mu      sync.Mutex
	asked   []string
}

func (f *fakeAgent) ID(context.Context) (control.IDResult, error)   { return control.IDResult{}, nil }
func (f *fakeAgent) Status(context.Context) (control.Status, error) { return control.Status{}, nil }
func (f *fakeAgent) PairShow(context.Context, time.Duration) (control.ShowResult, error) {
	return control.ShowResult{}, nil
}
func (f *fakeAgent) PairScan(context.Context, string) (control.ScanResult, error) {
	return control.ScanResult{}, nil
}
func (f *fakeAgent) PairWait(context.Context, string) (control.ScanResult, error) {
	return control.ScanResult{}, nil
}
func (f *fakeAgent) Friends(context.Context) ([]control.FriendView, error) { return f.friends, nil }
func (f *fakeAgent) Relay(context.Context, control.RelayRequest) (control.RelayResult, error) {
	return control.RelayResult{}, nil
}
func (f *fakeAgent) FriendAction(_ context.Context, a control.FriendAction, user string) (control.FriendStatus, error) {
	f.mu.Lock()
	f.asked = append(f.asked, string(a)+" "+user)
	f.mu.Unlock()
	u, err := seed.ParseUserPublic(user)
	return control.FriendStatus{UserID: u, Status: "blocked"}, err
}

// serveFake runs a fake agent for a new home folder until the test ends.
func serveFake(t *testing.T, f *fakeAgent) string {
	home := t.TempDir()
	l, err := control.Listen(home)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		control.Serve(ctx, l, control.NewHandler(f))
	}()
	t.Cleanup(func() { cancel(); l.Close(); <-done })
	return home
}

func testUser(b byte) seed.UserPublic {
	var u seed.UserPublic
	for i := range u {
		u[i] = b
	}
	u[31] = 1
	return u
}

func TestFriendsByNameOrPrefix(t *testing.T) {
	bob, bob2, carol := testUser(0x6b), testUser(0x6c), testUser(0xca)
	f := &fakeAgent{friends: []control.FriendView{
		{UserID: bob, Name: "bob", Status: roster.StatusFriend},
		{UserID: bob2, Name: "Bob", Status: roster.StatusFriend},
		{UserID: carol, Name: "carol\u202e", Status: roster.StatusFriend},
	}}
	home := serveFake(t, f)
	for _, tc := range []struct {
		arg  string
		code int
		want string // the user asked for, or in the error
	}{
		{"carol", 0, carol.ID()},
		{carol.ID()[:12], 0, carol.ID()},
		{strings.ToUpper(bob.ID()[:6]), 0, bob.ID()},
		{"bob", 2, `"bob" matches 2 friends`},
		{"6b", 0, bob.ID()},
		{"dave", 2, `no friend is named "dave"`},
		{"abc", 2, "or has a user ID starting with abc"},
		{strings.Repeat("0", 64), 2, "is not a user ID"},
		{strings.Repeat("ab", 32), 0, strings.Repeat("ab", 32)},
	} {
		code, stdout, stderr := run(t, "", nil, "--home", home, "friends", "block", tc.arg)
		if code != tc.code || tc.code == 0 && !strings.Contains(stdout, tc.want) || tc.code != 0 && !strings.Contains(stderr, tc.want) {
			t.Errorf("friends block %s: exit %d, stdout %q, stderr %q; want %d and %q", tc.arg, code, stdout, stderr, tc.code, tc.want)
		}
		checkPlain(t, stderr)
		if tc.arg == "bob" && (!strings.Contains(stderr, "kith: hint:   "+bob.ID()+" bob") || !strings.Contains(stderr, bob2.ID()+" Bob")) {
			t.Errorf("an ambiguous name lists no matches: %q", stderr)
		}
		if tc.arg == strings.Repeat("ab", 32) && !strings.Contains(stderr, "never paired with") {
			t.Errorf("blocking a stranger said nothing: %q", stderr)
		}
	}
}

func (f *fakeAgent) Devices(context.Context) ([]control.OwnDevice, error) { return nil, nil }

func (f *fakeAgent) DevicesRevoke(context.Context, control.RevokeRequest) (control.RevokeResult, error) {
	return control.RevokeResult{}, nil
}
