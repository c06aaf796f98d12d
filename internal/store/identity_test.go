package store

import (
	"bytes"
	"github.com/kith-project/kith/seed"
	"path/filepath"
	"testing"
	"time"
)

func TestIdentityRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.Identity(); err != nil || found {
		t.Fatalf("a new store has an identity: %v, %v", found, err)
	}
	want := Identity{
		UserID:           seed.UserPublic{0xaa, 0x11},
		DeviceID:         seed.DevicePublic{0xbb, 0x22},
		DeviceIndex:      7,
		Name:             "laptop ✓",
		ArchiveRecipient: "age1example",
		Cert:             []byte{0, 1, 2, 255},
		Created:          time.Date(2026, 11, 3, 12, 0, 0, 123, time.UTC),
	}
	if err := s.SetIdentity(want); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, found, err := s.Identity()
	if err != nil || !found {
		t.Fatalf("Identity = %v, %v", found, err)
	}
	if got.UserID != want.UserID || got.DeviceID != want.DeviceID || got.DeviceIndex != want.DeviceIndex ||
		got.Name != want.Name || got.ArchiveRecipient != want.ArchiveRecipient ||
		!bytes.Equal(got.Cert, want.Cert) || !got.Created.Equal(want.Created) {
		t.Errorf("got %+v, want %+v", got, want)
	}

	var raw []byte
	if err := s.List(BucketIdentity, func(key string, v []byte) error {
		if key == "self" {
			raw = v
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"user_id"`, `"device_id"`, `"device_index":7`, `"name"`, `"archive_recipient"`, `"cert"`, `"created"`} {
		if !bytes.Contains(raw, []byte(key)) {
			t.Errorf("stored JSON %s lacks %s", raw, key)
		}
	}
}
