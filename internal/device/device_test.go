package device

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/keystore"
	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/seed"
)

func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestProvisionAndLoad(t *testing.T) {
	p, err := seed.Generate(12)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st := openStore(t, dir)
	now := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	id, err := Provision(dir, st, Request{Phrase: p, Index: 3, Name: "phone", Lock: []byte("lock"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Seed("")
	user, _ := seed.DeriveUser(s)
	dev, arch, _ := seed.DeriveDevice(s, 3)
	if !id.UserID.Equal(user.Public()) || !id.DeviceID.Equal(dev.Public()) || id.DeviceIndex != 3 || id.ArchiveRecipient != arch.Recipient().String() {
		t.Fatalf("identity %+v does not match the derivation", id)
	}
	if _, err := Load(dir, st, []byte("wrong")); !errors.Is(err, keystore.ErrWrongPassphrase) {
		t.Fatalf("Load with a wrong lock: %v", err)
	}
	d, err := Load(dir, st, []byte("lock"))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Device.Public().Equal(dev.Public()) || d.Cert.Index != 3 || d.Cert.Name != "phone" || !d.Cert.Issued.Equal(now) {
		t.Fatalf("loaded device %+v", d.Cert)
	}
	if err := d.Cert.Verify(); err != nil {
		t.Fatalf("certificate: %v", err)
	}
	// A second provision is refused without Force, and changes nothing.
	q, _ := seed.Generate(12)
	if _, err := Provision(dir, st, Request{Phrase: q, Name: "other"}); !errors.Is(err, ErrExists) {
		t.Fatalf("second Provision: %v", err)
	}
	if again, _, _ := st.Identity(); again.DeviceID != id.DeviceID {
		t.Fatal("a refused Provision changed the identity")
	}
	if _, err := Provision(dir, st, Request{Phrase: p, Index: seed.MaxDeviceIndex + 1}); err == nil {
		t.Fatal("the recovery key's index was accepted as a device index")
	}
}

func TestLoadRefusesAForeignKeystore(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	pa, _ := seed.Generate(12)
	pb, _ := seed.Generate(12)
	sa, sb := openStore(t, a), openStore(t, b)
	if _, err := Provision(a, sa, Request{Phrase: pa}); err != nil {
		t.Fatal(err)
	}
	if _, err := Provision(b, sb, Request{Phrase: pb}); err != nil {
		t.Fatal(err)
	}
	// b's identity with a's keys: refused.
	if _, err := Load(a, sb, nil); err == nil {
		t.Fatal("a keystore was loaded against another identity")
	}
}

// BenchmarkProvision is an in-process restore: seed, derivation,
// certificate, unsealed keystore and store writes.
func BenchmarkProvision(b *testing.B) {
	p, _ := seed.Generate(24)
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		st := openStore(b, dir)
		b.StartTimer()
		if _, err := Provision(dir, st, Request{Phrase: p, Name: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
}
