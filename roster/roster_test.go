package roster

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/seed"
)

type fixture struct {
	st   *store.Store
	user seed.UserKey
	r    *Roster
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p, err := seed.Generate(12)
	if err != nil {
		t.Fatal(err)
	}
	u, err := seed.DeriveUser(p.Seed(""))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{st: st, user: u, r: New(u.Public())}
}

// apply applies c in its own transaction and installs the result.
func (f *fixture) apply(t *testing.T, c Change) error {
	t.Helper()
	var next *Roster
	err := f.st.Update(func(tx *store.Tx) error {
		var err error
		next, err = f.r.Apply(tx, c)
		return err
	})
	if err == nil {
		f.r = next
	}
	return err
}

// reload reads the roster back from the store.
func (f *fixture) reload(t *testing.T) *Roster {
	t.Helper()
	var r *Roster
	if err := f.st.View(func(tx *store.Tx) (err error) {
		r, err = Load(tx, f.r.Self())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return r
}

func id(b byte) (out [32]byte) {
	for i := range out {
		out[i] = b
	}
	return out
}

func pairChange(user, dev byte, kind Kind) Change {
	d := Device{DeviceID: id(dev), UserID: id(user), Kind: kind, Name: "d"}
	c := Change{Op: OpPair, Device: &d}
	if kind == KindFriend {
		c.Friend = &Friend{UserID: id(user), Name: "bob", Status: StatusFriend, PairedAt: time.Unix(1e9, 0).UTC()}
	}
	return c
}

func TestPairBlockRemove(t *testing.T) {
	f := newFixture(t)
	if err := f.apply(t, pairChange(1, 10, KindFriend)); err != nil {
		t.Fatal(err)
	}
	if err := f.apply(t, pairChange(1, 11, KindFriend)); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Roster{f.r, f.reload(t)} {
		if len(r.Friends()) != 1 || len(r.DevicesOf(id(1))) != 2 {
			t.Fatalf("after two pairings: friends %v, devices %v", r.Friends(), r.Devices())
		}
		if _, ok := r.Reachable(id(10)); !ok {
			t.Fatal("a friend's device is not reachable")
		}
	}
	if err := f.apply(t, Change{Op: OpStatus, User: id(1), Status: StatusBlocked}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.reload(t).Reachable(id(10)); ok || !f.r.Blocked(id(1)) {
		t.Fatal("a blocked user's device is still reachable")
	}
	if err := f.apply(t, Change{Op: OpStatus, User: id(1), Status: StatusFriend}); err != nil {
		t.Fatal(err)
	}
	if fr, ok := f.r.Friend(id(1)); !ok || fr.Status != StatusFriend || fr.Name != "bob" {
		t.Fatalf("unblocking a friend met in person: %+v %v", fr, ok)
	}
	if err := f.apply(t, Change{Op: OpRemove, User: id(1)}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Roster{f.r, f.reload(t)} {
		if len(r.Friends()) != 0 || len(r.Devices()) != 0 {
			t.Fatalf("after remove: friends %v, devices %v", r.Friends(), r.Devices())
		}
	}
	if err := f.apply(t, Change{Op: OpRemove, User: id(1)}); !errors.Is(err, ErrNoFriend) {
		t.Fatalf("removing a stranger: %v", err)
	}
}

// Blocking a user never met, then unblocking them, leaves no friend behind.
func TestUnblockNeverMetForgets(t *testing.T) {
	f := newFixture(t)
	if err := f.apply(t, Change{Op: OpStatus, User: id(2), Status: StatusBlocked}); err != nil {
		t.Fatal(err)
	}
	if !f.r.Blocked(id(2)) {
		t.Fatal("not blocked")
	}
	if err := f.apply(t, Change{Op: OpStatus, User: id(2), Status: StatusFriend}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.reload(t).Friend(id(2)); ok {
		t.Fatal("unblocking a user never met left a phantom friend")
	}
	if err := f.apply(t, Change{Op: OpStatus, User: id(3), Status: StatusFriend}); !errors.Is(err, ErrNoFriend) {
		t.Fatalf("unblocking a stranger: %v", err)
	}
}

func TestRevocation(t *testing.T) {
	f := newFixture(t)
	if err := f.apply(t, pairChange(0, 20, KindOwn)); err != nil {
		t.Fatal(err)
	}
	own := Device{DeviceID: id(20), UserID: f.user.Public(), Kind: KindOwn}
	if err := f.apply(t, Change{Op: OpPair, Device: &own}); err != nil {
		t.Fatal(err)
	}
	rev, err := f.user.Revoke(seed.Revocation{Device: id(20), Index: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.apply(t, Change{Op: OpRevoke, Revocation: rev.Marshal()}); err != nil {
		t.Fatal(err)
	}
	r := f.reload(t)
	if !r.Revoked(id(20)) {
		t.Fatal("the revocation did not survive a reload")
	}
	if _, ok := r.Reachable(id(20)); ok {
		t.Fatal("a revoked device is reachable")
	}
	// A revoked device cannot come back by pairing again.
	if err := f.apply(t, Change{Op: OpPair, Device: &own}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("re-adding a revoked device: %v", err)
	}
	// Another user's revocation is refused, and so is a forged one.
	other := newFixture(t)
	orev, _ := other.user.Revoke(seed.Revocation{Device: id(21), Index: 4})
	if err := f.apply(t, Change{Op: OpRevoke, Revocation: orev.Marshal()}); !errors.Is(err, ErrBadChange) {
		t.Fatalf("another user's revocation: %v", err)
	}
	forged := rev.Marshal()
	forged[len(forged)-1] ^= 1
	if err := f.apply(t, Change{Op: OpRevoke, Revocation: forged}); !errors.Is(err, ErrBadChange) {
		t.Fatalf("a forged revocation: %v", err)
	}
}

// A change whose transaction fails leaves the roster as it was, in memory
// and on disk.
func TestFailedTransactionChangesNothing(t *testing.T) {
	f := newFixture(t)
	before := f.r
	boom := errors.New("disk full")
	err := f.st.Update(func(tx *store.Tx) error {
		if _, err := f.r.Apply(tx, pairChange(1, 10, KindFriend)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if len(before.Devices()) != 0 || len(f.reload(t).Devices()) != 0 {
		t.Fatal("a failed change left a device behind")
	}
}

func TestMalformedChanges(t *testing.T) {
	f := newFixture(t)
	d := Device{DeviceID: id(10), UserID: id(1), Kind: KindFriend}
	for name, c := range map[string]Change{
		"no op":              {},
		"pair no device":     {Op: OpPair},
		"friend no friend":   {Op: OpPair, Device: &d},
		"friend wrong user":  {Op: OpPair, Device: &d, Friend: &Friend{UserID: id(2)}},
		"bad status":         {Op: OpStatus, User: id(1), Status: "enemy"},
		"revoke no bytes":    {Op: OpRevoke},
		"revoke short bytes": {Op: OpRevoke, Revocation: []byte{1, 2, 3}},
	} {
		if err := f.apply(t, c); !errors.Is(err, ErrBadChange) {
			t.Errorf("%s: %v, want ErrBadChange", name, err)
		}
	}
}

// Devices and Friends come sorted as their hex IDs sort.
func TestSortedByID(t *testing.T) {
	f := newFixture(t)
	for _, b := range []byte{0xf0, 0x0a, 0x9c, 0x10} {
		if err := f.apply(t, pairChange(b, b, KindFriend)); err != nil {
			t.Fatal(err)
		}
	}
	ds, fs := f.r.Devices(), f.r.Friends()
	for i := 1; i < len(ds); i++ {
		if ds[i-1].DeviceID.ID() >= ds[i].DeviceID.ID() || fs[i-1].UserID.ID() >= fs[i].UserID.ID() {
			t.Fatalf("not sorted by hex ID: %v / %v", ds, fs)
		}
	}
}
