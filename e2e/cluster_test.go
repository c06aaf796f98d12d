package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/kithtest"
)

// clusterFlags run agents with short heartbeats and the LAN raft profile.
var clusterFlags = []string{"--heartbeat", "300ms", "--raft-profile", "lan"}

// own is one device of the user of a cluster test.
type own struct {
	*kithtest.Device
	id    identity
	agent *kithtest.Agent
	addr  string
}

// ownDevices makes n devices of one user on 127.0.0.2, .3, …: device 0 by
// init, the others restored from its phrase, each running an agent. It
// returns them and the phrase.
func ownDevices(t *testing.T, n int) ([]*own, string) {
	t.Helper()
	var ds []*own
	var phrase string
	for i := range n {
		d := &own{Device: kithtest.NewDevice(t)}
		if i == 0 {
			d.JSON(&d.id, "", "init", "--name", "dev0", "--words", "12")
			phrase = d.id.Mnemonic
		} else {
			d.JSON(&d.id, phrase, "restore", "--device", strconv.Itoa(i), "--name", "dev"+strconv.Itoa(i))
		}
		d.addr = kithtest.FreeAddr(t, fmt.Sprintf("127.0.0.%d", i+2))
		d.agent = d.Start(d.addr, clusterFlags...)
		ds = append(ds, d)
	}
	return ds, phrase
}

// pairOwn pairs two devices of one user through invite files.
func pairOwn(t *testing.T, a, b *own) {
	t.Helper()
	show := func(d *own) string {
		png := filepath.Join(t.TempDir(), "invite.png")
		d.JSON(new(showResult), "", "pair", "show", "--png", png)
		return png
	}
	aPNG, bPNG := show(a), show(b)
	var first, second scanResult
	a.JSON(&first, "", "pair", "scan", "--no-wait", bPNG)
	b.JSON(&second, "", "pair", "scan", aPNG)
	if second.Status != "paired" || second.Kind != "own" {
		t.Fatalf("second scan: %+v, want paired own", second)
	}
}

func (d *own) status(t *testing.T) control.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := d.agent.Client().Status(ctx)
	if err != nil {
		return control.Status{}
	}
	return st
}

func (d *own) devices(t *testing.T) []control.OwnDevice {
	t.Helper()
	var ds []control.OwnDevice
	d.JSON(&ds, "", "devices")
	return ds
}

// agree waits until every device sees the same leader, voters and
// non-voters (voters of them), with no write pending, and returns the
// leader's index in ds.
func agree(t *testing.T, ds []*own, voters int, what string) int {
	t.Helper()
	leader := -1
	kithtest.Eventually(t, 90*time.Second, what, func() error {
		first := ds[0].status(t).Cluster
		for i, d := range ds {
			c := d.status(t).Cluster
			if c.Leader == "" || c.Leader != first.Leader || len(c.Voters) != voters || !slices.Equal(c.Voters, first.Voters) || c.Pending != 0 {
				return fmt.Errorf("device %d sees %+v, device 0 %+v", i, c, first)
			}
		}
		for i, d := range ds {
			if d.id.DeviceID == first.Leader {
				leader = i
				return nil
			}
		}
		return fmt.Errorf("the leader %s is none of the devices", first.Leader)
	})
	return leader
}

// blockedOn reports whether device d lists user as blocked.
func blockedOn(t *testing.T, d *own, user string) bool {
	var fs []friendView
	d.JSON(&fs, "", "friends")
	f, ok := findFriend(fs, user)
	return ok && f.Status == "blocked"
}

// someUser is a user ID nobody has: blocking it is a roster change.
func someUser(i int) string {
	return fmt.Sprintf("%064x", 0xbeef00+i)
}

// copyHome copies a stopped device's home, regular files only.
func copyHome(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "home")
	err := filepath.WalkDir(from, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if de.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		if !de.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

func TestClusterThreeDevicesLeaderLossAndRevoke(t *testing.T) {
	ds, phrase := ownDevices(t, 3)
	pairOwn(t, ds[0], ds[1])
	pairOwn(t, ds[0], ds[2])
	leader := agree(t, ds, 3, "three devices agree on three voters and one leader")
	// All three list the same roster.
	want := ds[0].devices(t)
	if len(want) != 3 {
		t.Fatalf("device 0 lists %d devices, want 3: %+v", len(want), want)
	}
	for i, d := range ds[1:] {
		got := d.devices(t)
		if len(got) != 3 {
			t.Fatalf("device %d lists %+v", i+1, got)
		}
		for k := range got {
			if got[k].DeviceID != want[k].DeviceID || got[k].DeviceIndex != want[k].DeviceIndex || got[k].Revoked {
				t.Fatalf("device %d lists %+v, device 0 %+v", i+1, got, want)
			}
		}
	}

	// SIGKILL the leader: the survivors elect another, and a change made
	// then reaches the killed device when it returns.
	killed := ds[leader]
	killed.agent.Kill()
	var survivors []*own
	for i, d := range ds {
		if i != leader {
			survivors = append(survivors, d)
		}
	}
	kithtest.Eventually(t, 90*time.Second, "the survivors elect a new leader", func() error {
		for _, d := range survivors {
			c := d.status(t).Cluster
			if c.Leader == "" || c.Leader == killed.id.DeviceID {
				return fmt.Errorf("%s sees %+v", d.id.Name, c)
			}
		}
		return nil
	})
	survivors[0].JSON(new(map[string]any), "", "friends", "block", someUser(1))
	kithtest.Eventually(t, 60*time.Second, "the block on both survivors", func() error {
		for _, d := range survivors {
			if !blockedOn(t, d, someUser(1)) {
				return fmt.Errorf("not blocked on %s", d.id.Name)
			}
		}
		return nil
	})
	killed.agent = killed.Start(killed.addr, clusterFlags...)
	kithtest.Eventually(t, 90*time.Second, "the block reaches the device that was killed", func() error {
		if !blockedOn(t, killed, someUser(1)) {
			return fmt.Errorf("not blocked on %s", killed.id.Name)
		}
		return nil
	})
	agree(t, ds, 3, "three voters again")

	// Device 2 is lost for good: killed, its home deleted (a copy kept, as
	// a thief might). A survivor revokes it with the phrase.
	lost := ds[2]
	lost.agent.Kill()
	old := copyHome(t, lost.Home)
	os.RemoveAll(lost.Home)
	var res control.RevokeResult
	ds[0].JSON(&res, phrase, "devices", "revoke", "2")
	if !res.Revoked || res.DeviceIndex != 2 {
		t.Fatalf("devices revoke 2: %+v", res)
	}
	for _, d := range ds[:2] {
		kithtest.Eventually(t, 60*time.Second, d.id.Name+" shows device 2 revoked", func() error {
			for _, v := range d.devices(t) {
				if v.DeviceIndex == 2 && v.Revoked {
					return nil
				}
			}
			return fmt.Errorf("devices: %+v", d.devices(t))
		})
	}
	agree(t, ds[:2], 1, "the revoked voter leaves the configuration")
	// A process started from the old home is refused by its former peers.
	thief := &own{Device: &kithtest.Device{T: t, Home: old}, id: lost.id, addr: lost.addr}
	thief.agent = thief.Start(thief.addr, clusterFlags...)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range thief.status(t).Peers {
			if p.Online {
				t.Fatalf("the revoked device's old home reaches %s", p.DeviceID)
			}
		}
		for _, d := range ds[:2] {
			for _, v := range d.devices(t) {
				if v.DeviceIndex == 2 && (v.Online || !v.Revoked) {
					t.Fatalf("%s lists the revoked device as %+v", d.id.Name, v)
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	// It learns on first contact that it was revoked, and says so.
	kithtest.Eventually(t, 60*time.Second, "the old home learns it is revoked", func() error {
		if c := thief.status(t).Cluster; c.State != "revoked" || !thief.agent.Contains("was revoked; restore with a new index") {
			return fmt.Errorf("cluster %+v", c)
		}
		return nil
	})
}

func TestClusterRecoversAfterLosingQuorum(t *testing.T) {
	ds, phrase := ownDevices(t, 3)
	pairOwn(t, ds[0], ds[1])
	pairOwn(t, ds[0], ds[2])
	agree(t, ds, 3, "three voters")
	// A change made on device 1 is committed and reaches device 0.
	ds[1].JSON(new(map[string]any), "", "friends", "block", someUser(2))
	kithtest.Eventually(t, 60*time.Second, "the block on device 0", func() error {
		if !blockedOn(t, ds[0], someUser(2)) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	agree(t, ds, 3, "the block committed everywhere")
	// Devices 1 and 2 are lost for good, and quorum with them.
	for _, d := range ds[1:] {
		d.agent.Kill()
		os.RemoveAll(d.Home)
	}
	var res control.RevokeResult
	ds[0].JSON(&res, phrase, "devices", "revoke", "1")
	if len(res.Recovered) != 1 || res.Recovered[0] != ds[0].id.DeviceID {
		t.Fatalf("revoke 1 on the survivor: %+v, want a recovery onto device 0", res)
	}
	kithtest.Eventually(t, 60*time.Second, "the survivor leads a one-voter cluster", func() error {
		c := ds[0].status(t).Cluster
		if c.Leader != ds[0].id.DeviceID || len(c.Voters) != 1 || c.Pending != 0 {
			return fmt.Errorf("%+v", c)
		}
		return nil
	})
	var res2 control.RevokeResult
	ds[0].JSON(&res2, phrase, "devices", "revoke", "2")
	if len(res2.Recovered) != 0 {
		t.Fatalf("revoke 2 recovered again: %+v", res2)
	}
	// It can grow again: a device restored with a new index joins and
	// gets every entry committed before the loss.
	n := &own{Device: kithtest.NewDevice(t)}
	n.JSON(&n.id, phrase, "restore", "--device", "3", "--name", "dev3")
	n.addr = kithtest.FreeAddr(t, "127.0.0.5")
	n.agent = n.Start(n.addr, clusterFlags...)
	pairOwn(t, ds[0], n)
	grown := []*own{ds[0], n}
	agree(t, grown, 1, "the new device joins the recovered cluster")
	kithtest.Eventually(t, 60*time.Second, "the new device has the entries from before the loss", func() error {
		if !blockedOn(t, n, someUser(2)) {
			return fmt.Errorf("no block yet")
		}
		revoked := 0
		for _, v := range n.devices(t) {
			if v.Revoked {
				revoked++
			}
		}
		if revoked != 2 {
			return fmt.Errorf("%d revoked devices listed, want 2", revoked)
		}
		return nil
	})
	if c := n.status(t).Cluster; len(c.Nonvoters) != 1 {
		t.Fatalf("the second device is not a non-voter: %+v", c)
	}
}

func TestClusterVoterMoves(t *testing.T) {
	ds, _ := ownDevices(t, 3)
	pairOwn(t, ds[0], ds[1])
	pairOwn(t, ds[0], ds[2])
	agree(t, ds, 3, "three voters")
	// Device 1 moves to another loopback address.
	if err := ds[1].agent.Stop(); err != nil {
		t.Fatal(err)
	}
	ds[1].addr = kithtest.FreeAddr(t, "127.0.0.9")
	ds[1].agent = ds[1].Start(ds[1].addr, clusterFlags...)
	ds[0].JSON(new(map[string]any), "", "friends", "block", someUser(3))
	kithtest.Eventually(t, 90*time.Second, "the change reaches the device that moved", func() error {
		if !blockedOn(t, ds[1], someUser(3)) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	agree(t, ds, 3, "three voters, the configuration unchanged")
}

func TestClusterFriendPairedWithoutQuorum(t *testing.T) {
	ds, _ := ownDevices(t, 3)
	pairOwn(t, ds[0], ds[1])
	pairOwn(t, ds[0], ds[2])
	agree(t, ds, 3, "three voters")
	for _, d := range ds[1:] {
		d.agent.Kill()
	}
	friend := newPerson(t, "friend", "127.0.0.6", "--heartbeat", "300ms")
	_, fPNG := friend.show(t)
	png := filepath.Join(t.TempDir(), "invite.png")
	ds[0].JSON(new(showResult), "", "pair", "show", "--png", png)
	ds[0].JSON(new(scanResult), "", "pair", "scan", "--no-wait", fPNG)
	friend.JSON(new(scanResult), "", "pair", "scan", png)
	// Local-first: the friend is a friend here at once, and the write waits.
	var fs []friendView
	ds[0].JSON(&fs, "", "friends")
	if _, ok := findFriend(fs, friend.id.UserID); !ok {
		t.Fatalf("the friend is not listed on the device that paired: %+v", fs)
	}
	if c := ds[0].status(t).Cluster; c.Pending == 0 {
		t.Fatalf("no write pending without quorum: %+v", c)
	}
	if res := ds[0].Run("", "status"); !containsAll(res.Stdout, "writes pending") {
		t.Fatalf("kith status does not say writes are pending:\n%s", res.Stdout)
	}
	for _, d := range ds[1:] {
		d.agent = d.Start(d.addr, clusterFlags...)
	}
	for _, d := range ds {
		kithtest.Eventually(t, 90*time.Second, d.id.Name+" lists the friend", func() error {
			var fs []friendView
			d.JSON(&fs, "", "friends")
			if f, ok := findFriend(fs, friend.id.UserID); !ok || f.Status != "friend" {
				return fmt.Errorf("friends: %+v", fs)
			}
			return nil
		})
	}
	agree(t, ds, 3, "nothing pending once quorum returned")
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestClusterRestoredWithRevokedIndexIsTold(t *testing.T) {
	ds, phrase := ownDevices(t, 2)
	pairOwn(t, ds[0], ds[1])
	agree(t, ds, 1, "two devices")
	ds[1].agent.Kill()
	os.RemoveAll(ds[1].Home)
	ds[0].JSON(new(control.RevokeResult), phrase, "devices", "revoke", "1")
	// The user restores index 1 again, by mistake, and scans an invite of
	// device 0: the scan fails and says why.
	again := &own{Device: kithtest.NewDevice(t)}
	again.JSON(&again.id, phrase, "restore", "--device", "1", "--name", "again")
	again.addr = kithtest.FreeAddr(t, "127.0.0.7")
	again.agent = again.Start(again.addr, clusterFlags...)
	png := filepath.Join(t.TempDir(), "invite.png")
	ds[0].JSON(new(showResult), "", "pair", "show", "--png", png)
	again.JSON(new(showResult), "", "pair", "show")
	res := again.Run("", "pair", "scan", png)
	if res.Code == 0 || !strings.Contains(res.Stderr, "this device was revoked") || !strings.Contains(res.Stderr, "new index") {
		t.Fatalf("scanning with a revoked index: %s", res)
	}
	if c := again.status(t).Cluster; c.State != "revoked" {
		t.Fatalf("the revoked device's cluster: %+v", c)
	}
}
