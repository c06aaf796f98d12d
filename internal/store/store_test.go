package store

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

type friend struct {
	Name    string   `json:"name"`
	Devices []string `json:"devices"`
}

func TestPutGetDelete(t *testing.T) {
	s, _ := openTemp(t)
	want := friend{Name: "Ana", Devices: []string{"d1", "d2"}}
	if err := s.Put(BucketFriends, "u1", want); err != nil {
		t.Fatal(err)
	}
	var got friend
	found, err := s.Get(BucketFriends, "u1", &got)
	if err != nil || !found {
		t.Fatalf("Get = %v, %v", found, err)
	}
	if got.Name != want.Name || strings.Join(got.Devices, ",") != "d1,d2" {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if found, err := s.Get(BucketFriends, "u1", nil); err != nil || !found {
		t.Errorf("Get with nil value = %v, %v", found, err)
	}

	if found, err := s.Get(BucketFriends, "u2", &got); err != nil || found {
		t.Errorf("Get of a missing key = %v, %v", found, err)
	}
	if found, err := s.Get(BucketDevices, "u1", &got); err != nil || found {
		t.Errorf("buckets are not separate: Get = %v, %v", found, err)
	}

	if err := s.Delete(BucketFriends, "u1"); err != nil {
		t.Fatal(err)
	}
	if found, _ := s.Get(BucketFriends, "u1", &got); found {
		t.Error("key still there after Delete")
	}
	if err := s.Delete(BucketFriends, "u1"); err != nil {
		t.Errorf("deleting a missing key: %v", err)
	}
}

func TestList(t *testing.T) {
	s, _ := openTemp(t)
	for _, k := range []string{"c", "a", "b"} {
		if err := s.Put(BucketPeers, k, map[string]string{"addr": k + ":1"}); err != nil {
			t.Fatal(err)
		}
	}
	var keys, raws []string
	err := s.List(BucketPeers, func(key string, raw []byte) error {
		keys = append(keys, key)
		raws = append(raws, string(raw))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, ",") != "a,b,c" || raws[0] != `{"addr":"a:1"}` {
		t.Errorf("got keys %v and values %v", keys, raws)
	}

	stop := errors.New("stop")
	n := 0
	err = s.List(BucketPeers, func(string, []byte) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("List did not stop at fn's error: %v after %d calls", err, n)
	}
}

func TestUpdateIsAtomic(t *testing.T) {
	s, _ := openTemp(t)
	fail := errors.New("changed my mind")
	err := s.Update(func(tx *Tx) error {
		if err := tx.Put(BucketFriends, "u1", friend{Name: "Ana"}); err != nil {
			return err
		}
		if err := tx.Put(BucketRevocations, "u2", true); err != nil {
			return err
		}
		if found, err := tx.Get(BucketFriends, "u1", nil); !found || err != nil {
			t.Errorf("a transaction does not see its own write: %v, %v", found, err)
		}
		return fail
	})
	if !errors.Is(err, fail) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if found, _ := s.Get(BucketFriends, "u1", nil); found {
		t.Error("a failed Update left its first write")
	}
	if found, _ := s.Get(BucketRevocations, "u2", nil); found {
		t.Error("a failed Update left its second write")
	}

	err = s.Update(func(tx *Tx) error {
		if err := tx.Put(BucketFriends, "u1", friend{Name: "Ana"}); err != nil {
			return err
		}
		return tx.Put(BucketRevocations, "u2", true)
	})
	if err != nil {
		t.Fatal(err)
	}
	if found, _ := s.Get(BucketRevocations, "u2", nil); !found {
		t.Error("a successful Update lost a write")
	}
}

func TestTxListWhileChanging(t *testing.T) {
	s, _ := openTemp(t)
	for _, k := range []string{"a", "b", "c"} {
		if err := s.Put(BucketInvites, k, 1); err != nil {
			t.Fatal(err)
		}
	}
	// Deleting every listed key from inside the listing works.
	err := s.Update(func(tx *Tx) error {
		return tx.List(BucketInvites, func(key string, _ []byte) error {
			return tx.Delete(BucketInvites, key)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := s.List(BucketInvites, func(string, []byte) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("after deleting all: %d keys, %v", n, err)
	}
}

func TestViewRefusesWrites(t *testing.T) {
	s, _ := openTemp(t)
	err := s.View(func(tx *Tx) error { return tx.Put(BucketFriends, "u1", 1) })
	if err == nil {
		t.Fatal("Put in a read-only transaction succeeded")
	}
}

func TestUnknownBucket(t *testing.T) {
	s, _ := openTemp(t)
	checks := map[string]error{
		"Get":    func() error { _, err := s.Get("nope", "k", nil); return err }(),
		"Put":    s.Put("nope", "k", 1),
		"Delete": s.Delete("nope", "k"),
		"List":   s.List("nope", func(string, []byte) error { return nil }),
	}
	for op, err := range checks {
		if !errors.Is(err, ErrUnknownBucket) {
			t.Errorf("%s: got %v, want ErrUnknownBucket", op, err)
		} else if !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "friends") {
			t.Errorf("%s: message %q does not name the bucket and the known ones", op, err)
		}
	}
}

func TestBadKeysAndValues(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.Put(BucketFriends, "", 1); err == nil {
		t.Error("Put with an empty key succeeded")
	}
	if err := s.Put(BucketFriends, strings.Repeat("k", bbolt.MaxKeySize+1), 1); err == nil {
		t.Error("Put with an oversized key succeeded")
	}
	if err := s.Put(BucketFriends, "k", make(chan int)); err == nil {
		t.Error("Put of a value JSON cannot encode succeeded")
	}
	if err := s.Put(BucketMeta, schemaKey, 99); err == nil {
		t.Error("Put over the schema version succeeded")
	}
	if err := s.Delete(BucketMeta, schemaKey); err == nil {
		t.Error("Delete of the schema version succeeded")
	}
	if err := s.Put(BucketFriends, "k", "a string"); err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := s.Get(BucketFriends, "k", &n); err == nil {
		t.Error("Get into a value of the wrong type succeeded")
	}
}

func TestSurvivesReopen(t *testing.T) {
	s, path := openTemp(t)
	if err := s.Put(BucketDevices, "d1", friend{Name: "laptop"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var got friend
	if found, err := s2.Get(BucketDevices, "d1", &got); err != nil || !found || got.Name != "laptop" {
		t.Errorf("after reopening: %+v, %v, %v", got, found, err)
	}
}

func TestFileMode(t *testing.T) {
	_, path := openTemp(t)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
}

func TestOpenTightensLooseFile(t *testing.T) {
	s, path := openTemp(t)
	s.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
}

func TestSchemaVersionWritten(t *testing.T) {
	s, path := openTemp(t)
	s.Close()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		for _, name := range buckets {
			if tx.Bucket([]byte(name)) == nil {
				t.Errorf("bucket %s missing", name)
			}
		}
		if v := tx.Bucket([]byte(BucketMeta)).Get([]byte(schemaKey)); string(v) != strconv.Itoa(SchemaVersion) {
			t.Errorf("schema version %q, want %d", v, SchemaVersion)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	// A newer kith's database: only the meta bucket, with a higher version.
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	newer := SchemaVersion + 1
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte(BucketMeta))
		if err != nil {
			return err
		}
		return b.Put([]byte(schemaKey), []byte(strconv.Itoa(newer)))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	_, err = Open(path)
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("got %v, want ErrNewerSchema", err)
	}
	var se *NewerSchemaError
	if !errors.As(err, &se) || se.Found != newer || se.Supported != SchemaVersion {
		t.Errorf("got %#v", se)
	}
	want := "this home was written by a newer kith (schema " + strconv.Itoa(newer) +
		", this kith understands " + strconv.Itoa(SchemaVersion) + ")"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("message %q does not contain %q", err, want)
	}

	// The refused Open changed nothing.
	db, err = bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		n := 0
		err := tx.ForEach(func([]byte, *bbolt.Bucket) error { n++; return nil })
		if n != 1 {
			t.Errorf("the newer database now has %d buckets, want 1", n)
		}
		if v := tx.Bucket([]byte(BucketMeta)).Get([]byte(schemaKey)); string(v) != strconv.Itoa(newer) {
			t.Errorf("schema version became %q", v)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDamagedSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte(BucketMeta))
		if err != nil {
			return err
		}
		return b.Put([]byte(schemaKey), []byte(`"one"`))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(path)
	if err == nil || errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("got %v, want an error saying the database is damaged", err)
	}
}

func TestSecondOpenTimesOut(t *testing.T) {
	_, path := openTemp(t)
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		s2, err := Open(path)
		if err == nil {
			s2.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		elapsed := time.Since(start)
		if !errors.Is(err, ErrInUse) {
			t.Fatalf("got %v, want ErrInUse", err)
		}
		if !strings.Contains(err.Error(), "in use by another process") || strings.Contains(err.Error(), "--home") {
			t.Errorf("message %q does not say what is wrong, or carries a command-line hint", err)
		}
		if elapsed > 2*time.Second {
			t.Errorf("second Open took %v, want about a second", elapsed)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second Open hung")
	}
}

func TestOpenAfterCloseSucceeds(t *testing.T) {
	s, path := openTemp(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if elapsed := time.Since(start); elapsed > 500*time.Millisecond {
		t.Errorf("Open after Close waited %v", elapsed)
	}
}

func TestCloseIsIdempotentAndFinal(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Put(BucketFriends, "k", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close: got %v, want ErrClosed", err)
	}
	if _, err := s.Get(BucketFriends, "k", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: got %v, want ErrClosed", err)
	}
}

func TestNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	junk := []byte(strings.Repeat("not a bolt database\n", 1000))
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if err == nil {
		t.Fatal("Open of a junk file succeeded")
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a kith database") {
		t.Errorf("message %q does not name the file and the problem", err)
	}
}

func TestOpenInMissingFolder(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing", FileName)); err == nil {
		t.Fatal("Open in a missing folder succeeded")
	}
}

// TestMigrate1to2 opens a schema-1 database, as kith wrote it before the
// roster was split from local state, and checks that every peer record was
// split into its roster part and its local part, byte for byte as a field.
func TestMigrate1to2(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	const id = "6b8578ba5dcf00000000000000000000000000000000000000000000000000aa"
	v1 := `{"device_id":"` + id + `","user_id":"` + strings.Repeat("b", 64) + `","kind":"friend","name":"bob","cert":"AAEC","addr":"127.0.0.2:7117","addrs":["10.0.0.2:7117"],"addr_version":7,"last_seen":"2026-11-30T10:00:00Z"}`
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range []string{BucketMeta, BucketIdentity, BucketFriends, BucketDevices, BucketPeers, BucketInvites, "blocked"} {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		if err := tx.Bucket([]byte(BucketPeers)).Put([]byte(id), []byte(v1)); err != nil {
			return err
		}
		return tx.Bucket([]byte(BucketMeta)).Put([]byte(schemaKey), []byte("1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(path)
	if err != nil {
		t.Fatalf("opening a schema-1 database: %v", err)
	}
	defer s.Close()
	var dev, peer map[string]any
	if ok, err := s.Get(BucketDevices, id, &dev); !ok || err != nil {
		t.Fatalf("devices/%s after migration: %v, %v", id, ok, err)
	}
	if ok, err := s.Get(BucketPeers, id, &peer); !ok || err != nil {
		t.Fatalf("peers/%s after migration: %v, %v", id, ok, err)
	}
	if len(dev) != 5 || dev["name"] != "bob" || dev["kind"] != "friend" || dev["cert"] != "AAEC" || dev["device_id"] != id || dev["addr"] != nil {
		t.Errorf("roster record after migration: %v", dev)
	}
	if len(peer) != 5 || peer["addr"] != "127.0.0.2:7117" || peer["addr_version"] != 7.0 || peer["last_seen"] != "2026-11-30T10:00:00Z" || peer["name"] != nil {
		t.Errorf("local record after migration: %v", peer)
	}
	err = s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket([]byte("blocked")) != nil {
			t.Error(`the unused "blocked" bucket survived the migration`)
		}
		if v := tx.Bucket([]byte(BucketMeta)).Get([]byte(schemaKey)); string(v) != "2" {
			t.Errorf("schema %q after migration, want 2", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
