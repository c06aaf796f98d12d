package conversation

import (
	"testing"

	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// TestGenesisRostersAndDirectory: a device revoked in a roster the genesis
// carries is no recipient and its messages are refused; a device the
// genesis rosters do not know but the Directory does is a recipient.
func TestGenesisRostersAndDirectory(t *testing.T) {
	l := newLab(t)
	alice, bob, carol := l.addUser("alice", 1), l.addUser("bob", 2), l.addUser("carol", 2)
	b0, b1, c0, c1 := bob.devs[0], bob.devs[1], carol.devs[0], carol.devs[1]
	// Carol's device 1 is revoked, in her roster.
	rev, err := carol.key.Revoke(seed.Revocation{Device: c1.self.Cert.Device, Index: 1, Revoked: l.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	carol.revs = []seed.Revocation{rev}
	// Bob's roster in the genesis names only device 0; alice's Directory
	// knows device 1 too.
	bobRoster, err := roster.NewSigned(bob.key.Public(), []seed.DeviceCert{b0.self.Cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.dir.certs[bob.key.Public()] = []seed.DeviceCert{b0.self.Cert, b1.self.Cert}
	id, err := alice.devs[0].book.Create(NewConversation{Topic: "rosters", Pattern: Chat,
		Members: []seed.UserPublic{bob.key.Public(), carol.key.Public()},
		Rosters: []roster.Signed{alice.roster(t), bobRoster, carol.roster(t)}})
	if err != nil {
		t.Fatal(err)
	}
	recips := map[seed.DevicePublic]bool{}
	for _, d := range alice.devs[0].book.Recipients() {
		recips[d] = true
	}
	if !recips[b0.self.Cert.Device] || !recips[b1.self.Cert.Device] || !recips[c0.self.Cert.Device] || recips[c1.self.Cert.Device] {
		t.Fatalf("alice queues the genesis for %v; want bob's two devices and carol's unrevoked one", recips)
	}
	n := l.net(9, 0.2, 0.2)
	c1.offline = true
	n.settle()
	if _, err := b1.book.Post(id, "text", "from the device the genesis did not name"); err != nil {
		t.Fatal(err)
	}
	n.settle()
	if v := l.show(c0, id); len(v.Messages) != 1 {
		t.Fatalf("carol shows %d messages, want bob's", len(v.Messages))
	}
	// The revoked device's message is refused.
	mustRefuse(t, c0, l.craftMsg(c1, id, 1, MessageID{}, 5, "text", "from the stolen phone"), "revoked")
}
