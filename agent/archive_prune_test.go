package agent

import (
	"context"
	"errors"
	"testing"

	"github.com/kith-project/kith/archive"
)

// TestArchiveDeleteOnRelay: bob's device relays blobs for alice and for
// carol. Alice's device deletes hers over stream 0x08 (twice: deleting
// is idempotent), but may not delete carol's, not even by naming carol
// as the owner; an own device may not ask another to delete.
func TestArchiveDeleteOnRelay(t *testing.T) {
	phrase := newPhrase(t)
	alice := startAgent(t, phrase, 0, "alice", "127.0.0.2")
	alice1 := startAgent(t, phrase, 1, "alice-1", "127.0.0.5")
	bob := startAgent(t, newPhrase(t), 0, "bob", "127.0.0.3")
	carol := startAgent(t, newPhrase(t), 0, "carol", "127.0.0.4")
	pairAgents(t, alice, bob)
	pairAgents(t, carol, bob)
	pairAgents(t, alice, alice1)
	waitFor(t, "bob online at alice", func() bool { return alice.onlineSet()[bob.dev.Cert.Device] })
	waitFor(t, "alice-1 online at alice", func() bool { return alice.onlineSet()[alice1.dev.Cert.Device] })
	mk := func(s string) archive.Blob {
		b := []byte("sealed bytes of " + s)
		return archive.Blob{Name: archive.NameOf(b), Data: b}
	}
	mine, theirs, shared := mk("alice"), mk("carol"), mk("both")
	user, carolUser := alice.dev.Cert.User, carol.dev.Cert.User
	for _, p := range []struct {
		owner *testAgent
		b     archive.Blob
	}{{alice, mine}, {carol, theirs}, {alice, shared}, {carol, shared}} {
		if err := bob.archives.blobs.Put(p.owner.dev.Cert.User, p.b.Name, p.b.Data); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	bobDev := bob.dev.Cert.Device
	var ref *arRefusal
	if _, _, err := alice.archives.ask(ctx, bobDev, arFrame{Type: arDelete, Owner: carolUser, Names: []archive.BlobName{theirs.Name}}, nil, nil); !errors.As(err, &ref) || ref.Code != arCodeDenied {
		t.Fatalf("deleting carol's blob as carol: %v", err)
	}
	for range 2 {
		if err := alice.archives.deleteAt(ctx, bobDev, []archive.BlobName{mine.Name, theirs.Name, shared.Name}); err != nil {
			t.Fatal(err)
		}
	}
	if bob.archives.holdsFor(user, mine.Name) || bob.archives.holdsFor(user, shared.Name) {
		t.Fatal("alice's blobs are still on bob's relay")
	}
	if !bob.archives.holdsFor(carolUser, theirs.Name) || !bob.archives.holdsFor(carolUser, shared.Name) {
		t.Fatal("alice's delete took carol's blobs from bob's relay")
	}
	if err := alice1.archives.blobs.Put(user, mine.Name, mine.Data); err != nil {
		t.Fatal(err)
	}
	if err := alice.archives.deleteAt(ctx, alice1.dev.Cert.Device, []archive.BlobName{mine.Name}); !errors.As(err, &ref) || ref.Code != arCodeDenied {
		t.Fatalf("an own device asked to delete: %v", err)
	}
	if !alice1.archives.holdsFor(user, mine.Name) {
		t.Fatal("an own device deleted a blob when another asked")
	}
}
