package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
)

// Compacting. bbolt keeps deleted records' bytes in its free pages until
// they are reused, so deleting a record does not destroy it. Compact
// rewrites the database into a new file holding only live records, syncs
// it, renames it over the old one and reopens it: the old file, free
// pages and all, is unlinked. (The file system may keep the old blocks
// until it reuses them; kith's claim is about the files in the home
// folder, what a copy of the folder holds.)

// compactWait bounds how long Compact waits for transactions under way to
// end before it gives up with ErrBusy.
const compactWait = 30 * time.Second

// ErrBusy is Compact's error when transactions never let go of the
// database for long enough.
var ErrBusy = errors.New("store: the database stayed busy")

// Compact rewrites the database so that no freed page keeps old bytes. It
// waits for transactions under way to end and blocks new ones while it
// runs. It must not be called from inside a transaction.
func (s *Store) Compact() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("store: %s: %w", s.path, ErrClosed)
	}
	// TryLock rather than Lock: a pending Lock would block a transaction
	// that opens another one on the same goroutine (View inside Update),
	// while TryLock lets readers come and go until none is left.
	deadline := time.Now().Add(compactWait)
	for !s.dbmu.TryLock() {
		if time.Now().After(deadline) {
			return fmt.Errorf("store: compacting %s: %w", s.path, ErrBusy)
		}
		time.Sleep(time.Millisecond)
	}
	defer s.dbmu.Unlock()
	tmp := filepath.Join(filepath.Dir(s.path), "."+filepath.Base(s.path)+".compact")
	os.Remove(tmp)
	dst, err := bbolt.Open(tmp, 0o600, &bbolt.Options{Timeout: openTimeout})
	if err != nil {
		return fmt.Errorf("store: compacting %s: %w", s.path, err)
	}
	if err := bbolt.Compact(dst, s.db, 1<<20); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("store: compacting %s: %w", s.path, err)
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("store: compacting %s: %w", s.path, err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store: compacting %s: %w", s.path, err)
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: compacting %s: closing: %w", s.path, err)
	}
	// From here on a failure leaves either file at s.path, both whole.
	renameErr := os.Rename(tmp, s.path)
	if renameErr == nil {
		syncDir(filepath.Dir(s.path))
	}
	db, err := bbolt.Open(s.path, 0o600, &bbolt.Options{Timeout: openTimeout})
	if err != nil {
		s.closed = true
		return fmt.Errorf("store: reopening %s after compacting: %w", s.path, err)
	}
	s.db = db
	if renameErr != nil {
		os.Remove(tmp)
		return fmt.Errorf("store: compacting %s: %w", s.path, renameErr)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
