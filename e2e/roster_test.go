package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/kithtest"
	"github.com/kith-project/kith/seed"
)

type revokedView struct {
	Revoked        bool   `json:"revoked"`
	RevokedMessage string `json:"revoked_message"`
}

// Friends follow the roster, over the real binary: bob pairs with alice's
// device 0; alice restores device 1 from her phrase and pairs it with
// device 0; bob then has device 1 online without ever pairing with it.
// After device 1 is revoked on device 0 (the revocation signed with the
// phrase, handed to the agent's revoke route), bob drops it, its
// heartbeats go unanswered, and device 1 says that it was revoked.
func TestFriendFollowsRoster(t *testing.T) {
	hb := []string{"--heartbeat", "300ms"}
	alice0 := newPerson(t, "alice-0", "127.0.0.2", hb...)
	bob := newPerson(t, "bob", "127.0.0.3", hb...)
	pair(t, bob, alice0)

	d1 := kithtest.NewDevice(t)
	var id1 identity
	d1.JSON(&id1, alice0.id.Mnemonic, "restore", "--device", "1", "--name", "alice-1")
	alice1 := &person{Device: d1, id: id1}
	alice1.agent = d1.Start(kithtest.FreeAddr(t, "127.0.0.4"), hb...)
	_, a0PNG := alice0.show(t)
	_, a1PNG := alice1.show(t)
	var r1, r2 scanResult
	alice1.JSON(&r1, "", "pair", "scan", "--no-wait", a0PNG)
	alice0.JSON(&r2, "", "pair", "scan", a1PNG)
	if r2.Kind != "own" || r2.Status != "paired" {
		t.Fatalf("own-device pairing: %+v, %+v", r1, r2)
	}

	joined := time.Now()
	peerOf := func(p *person, device string) (online, listed bool) {
		for _, pe := range p.status(t).Peers {
			if pe.DeviceID == device {
				return pe.Online, true
			}
		}
		return false, false
	}
	kithtest.Eventually(t, 90*time.Second, "bob has alice-1 online", func() error {
		if online, listed := peerOf(bob, id1.DeviceID); !online {
			return fmt.Errorf("alice-1 listed %v, online %v", listed, online)
		}
		return nil
	})
	t.Logf("bob has alice-1 online after %v", time.Since(joined).Round(10*time.Millisecond))
	f, ok := findFriend(bob.friends(t), alice0.id.UserID)
	if !ok || len(f.Devices) != 2 {
		t.Fatalf("bob's alice: %+v", f)
	}
	kithtest.Eventually(t, 90*time.Second, "alice-1 has bob online", func() error {
		if online, _ := peerOf(alice1, bob.id.DeviceID); !online {
			return fmt.Errorf("bob not online at alice-1")
		}
		return nil
	})

	// Revoke alice-1 on alice-0, with the phrase.
	phrase, err := seed.ParsePhrase(alice0.id.Mnemonic)
	if err != nil {
		t.Fatal(err)
	}
	user, err := seed.DeriveUser(phrase.Seed(""))
	if err != nil {
		t.Fatal(err)
	}
	dev1, err := seed.ParseDevicePublic(id1.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := user.Revoke(seed.Revocation{Device: dev1, Index: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	revoked := time.Now()
	if res, err := alice0.agent.Client().DevicesRevoke(ctx, control.RevokeRequest{Revocation: rev.Marshal()}); err != nil || !res.Revoked {
		t.Fatalf("revoke: %+v %v", res, err)
	}
	kithtest.Eventually(t, 90*time.Second, "bob drops alice-1", func() error {
		if _, listed := peerOf(bob, id1.DeviceID); listed {
			return fmt.Errorf("bob still lists alice-1")
		}
		return nil
	})
	t.Logf("bob dropped alice-1 after %v", time.Since(revoked).Round(10*time.Millisecond))
	kithtest.Eventually(t, 90*time.Second, "alice-1 knows it was revoked", func() error {
		var rv revokedView
		alice1.JSON(&rv, "", "status")
		if !rv.Revoked || !strings.Contains(rv.RevokedMessage, "kith restore --device 2 --force") {
			return fmt.Errorf("status says %+v", rv)
		}
		return nil
	})
	// Bob no longer answers alice-1's heartbeats.
	kithtest.Eventually(t, 90*time.Second, "bob offline at alice-1", func() error {
		if online, _ := peerOf(alice1, bob.id.DeviceID); online {
			return fmt.Errorf("bob still online at alice-1")
		}
		return nil
	})
	if res := alice1.Run("", "status"); !strings.Contains(res.Stdout, "REVOKED this device (index 1) was revoked") {
		t.Fatalf("kith status on the revoked device: %s", res)
	}
}
