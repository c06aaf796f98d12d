// Package store is a device's database: what it knows about itself, its
// friends, their devices and its peers, kept in one bbolt file in the home
// folder.
//
// # Layout
//
// The database file is "kith.db" in the home folder, mode 0600. It holds a
// fixed set of buckets, each a map from string keys to JSON values. The
// roster, the state a user's devices share (package roster), sits apart
// from what stays on this device:
//
//	meta         facts about the database itself; "schema" is the schema version
//	identity     "self": this device's [Identity]
//	friends      roster: friends, by user ID
//	devices      roster: known devices (own and friends'), by device ID
//	revocations  roster: signed revocations, by the revoked device's ID
//	peers        local: known devices' addresses and last-seen times, by device ID
//	invites      local: pairing invites used on this device, by invite hash
//	conversations      conversations: one record per conversation, by conversation ID (package conversation)
//	conv_messages      conversations: envelopes, by conversation ID "/" envelope ID
//	conv_outbox        conversations: unacknowledged deliveries, by device ID "/" sequence number
//	forward      local: envelopes held for other devices (store-and-forward, agent/conv_forward.go), by recipient and hash
//	archive      roster: archive placement (blob names, sizes, holders; agent/archive_state.go), key "state"
//
// The conversation and forward buckets were added within schema 2: an older kith
// ignores them, and Open creates them in an existing database.
//
// Values are written with encoding/json; [Store.Get] and [Store.Put] take and
// fill Go values, and [Store.List] hands out the raw JSON. A bucket name
// outside this list is refused with [ErrUnknownBucket].
//
// # Schema versions
//
// The value of meta/schema is the JSON number [SchemaVersion]. [Open] writes it
// into a new database, and refuses a database whose version is higher, that is
// one written by a newer kith, with a [*NewerSchemaError] (matching
// [ErrNewerSchema]) before changing anything in it. An older database is
// migrated forward in the same transaction that opens it:
//
//   - 1 to 2: each "peers" record held both a device's roster entry and its
//     address; the roster fields (device_id, user_id, kind, name, cert) move
//     to "devices", the local ones (device_id, addr, addrs, addr_version,
//     last_seen) stay in "peers". The unused "blocked" bucket is dropped.
//
// # One process at a time
//
// bbolt locks the file for as long as it is open. Open waits at most one
// second for that lock, then fails with [ErrInUse], so a second kith pointed
// at a busy home says so instead of hanging.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the version of the database layout this kith reads and
// writes.
const SchemaVersion = 2

// FileName is the name of the database file inside a home folder.
const FileName = "kith.db"

// openTimeout is how long Open waits for another process to let go.
const openTimeout = time.Second

// The buckets of schema version 2.
const (
	BucketMeta        = "meta"
	BucketIdentity    = "identity"
	BucketFriends     = "friends"
	BucketDevices     = "devices"
	BucketRevocations = "revocations"
	BucketPeers       = "peers"
	BucketInvites     = "invites"

	BucketConversations = "conversations"
	BucketConvMessages  = "conv_messages"
	BucketConvOutbox    = "conv_outbox"
	// BucketForward holds the envelopes this device stores and forwards
	// for friends (agent/conv_forward.go): opaque to it, by recipient.
	BucketForward = "forward"
	// BucketArchive holds the archive placement the own cluster agreed on
	// (agent/archive_state.go): blob names, sizes, holders, no plaintext.
	BucketArchive = "archive"
)

// buckets lists every bucket, in the order Open creates them.
var buckets = []string{
	BucketMeta, BucketIdentity, BucketFriends, BucketDevices,
	BucketRevocations, BucketPeers, BucketInvites,
	BucketConversations, BucketConvMessages, BucketConvOutbox,
	BucketForward, BucketArchive,
}

// schemaKey is the key in the meta bucket that holds the schema version.
const schemaKey = "schema"

// Sentinel errors that callers branch on.
var (
	ErrInUse         = errors.New("the database is in use by another process")
	ErrNewerSchema   = errors.New("this home was written by a newer kith")
	ErrNotDatabase   = errors.New("it is not a kith database or it is damaged")
	ErrDamaged       = errors.New("the database is damaged")
	ErrUnknownBucket = errors.New("unknown bucket")
	ErrClosed        = errors.New("the database is closed")
	ErrLink          = errors.New("a symbolic link where the database should be")
)

// NewerSchemaError is the error Open returns for a database written by a newer
// kith. It matches [ErrNewerSchema] with [errors.Is].
type NewerSchemaError struct {
	Path      string
	Found     int // the database's schema version
	Supported int // SchemaVersion
}

func (e *NewerSchemaError) Error() string {
	return fmt.Sprintf("store: %s: this home was written by a newer kith (schema %d, this kith understands %d)",
		e.Path, e.Found, e.Supported)
}

// Is reports whether target is [ErrNewerSchema].
func (e *NewerSchemaError) Is(target error) bool { return target == ErrNewerSchema }

// Store is an open database. Its methods are safe for concurrent use.
type Store struct {
	path string // constant after Open

	// dbmu guards db: transactions hold it for reading, Compact (which
	// swaps the file) and Close for writing.
	dbmu sync.RWMutex
	db   *bbolt.DB

	mu     sync.Mutex
	closed bool // guarded by mu
}

// Open opens the database at path, creating it with mode 0600 if needed, and
// makes sure that every bucket exists. It fails with [ErrInUse] if another
// process (or another Store in this one) holds the database for more than a
// second, and with [ErrNewerSchema] if a newer kith wrote it.
func Open(path string) (*Store, error) {
	// bbolt follows links: a link planted where the database lives would
	// make us write into the file it points to.
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil, fmt.Errorf("store: %s: %w", path, ErrLink)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: openTimeout})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("store: opening %s: %w", path, ErrInUse)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrChecksum):
		return nil, fmt.Errorf("store: opening %s: %w: %w", path, ErrNotDatabase, err)
	case err != nil:
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	if err := tighten(path); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.Update(func(tx *bbolt.Tx) error { return prepare(tx, path) }); err != nil {
		db.Close()
		return nil, err
	}
	return &Store{db: db, path: path}, nil
}

// tighten sets the database file's mode to 0600 if it lets others in.
func tighten(path string) error {
	info, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("store: checking %s: %w", path, err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("store: tightening %s to mode 0600: %w", path, err)
		}
	}
	return nil
}

// prepare checks the schema version, migrates an older database, then
// creates missing buckets and records the version. A newer database is left
// untouched.
func prepare(tx *bbolt.Tx, path string) error {
	found := 0 // a new database
	if meta := tx.Bucket([]byte(BucketMeta)); meta != nil {
		if raw := meta.Get([]byte(schemaKey)); raw != nil {
			v, err := strconv.Atoi(string(raw))
			if err != nil || v < 1 {
				return fmt.Errorf("store: %s: the schema version %q is not valid: %w", path, raw, ErrDamaged)
			}
			if v > SchemaVersion {
				return &NewerSchemaError{Path: path, Found: v, Supported: SchemaVersion}
			}
			found = v
		}
	}
	for _, name := range buckets {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("store: %s: creating bucket %s: %w", path, name, err)
		}
	}
	if found == 1 {
		if err := migrate1to2(tx); err != nil {
			return fmt.Errorf("store: %s: migrating schema 1 to 2: %w", path, err)
		}
	}
	return tx.Bucket([]byte(BucketMeta)).Put([]byte(schemaKey), []byte(strconv.Itoa(SchemaVersion)))
}

// migrate1to2 splits every schema-1 peer record into its roster part, in
// "devices", and its local part, in "peers", and drops the unused
// "blocked" bucket.
func migrate1to2(tx *bbolt.Tx) error {
	roster := []string{"device_id", "user_id", "kind", "name", "cert"}
	local := []string{"device_id", "addr", "addrs", "addr_version", "last_seen"}
	peers, devices := tx.Bucket([]byte(BucketPeers)), tx.Bucket([]byte(BucketDevices))
	type kv struct{ k, v []byte }
	var all []kv
	if err := peers.ForEach(func(k, v []byte) error {
		all = append(all, kv{slices.Clone(k), slices.Clone(v)})
		return nil
	}); err != nil {
		return err
	}
	pick := func(m map[string]json.RawMessage, keys []string) ([]byte, error) {
		out := map[string]json.RawMessage{}
		for _, k := range keys {
			if v, ok := m[k]; ok {
				out[k] = v
			}
		}
		return json.Marshal(out)
	}
	for _, e := range all {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(e.v, &m); err != nil {
			return fmt.Errorf("peer %q: %w", e.k, err)
		}
		r, err := pick(m, roster)
		if err != nil {
			return err
		}
		l, err := pick(m, local)
		if err != nil {
			return err
		}
		if err := devices.Put(e.k, r); err != nil {
			return err
		}
		if err := peers.Put(e.k, l); err != nil {
			return err
		}
	}
	if tx.Bucket([]byte("blocked")) != nil {
		if err := tx.DeleteBucket([]byte("blocked")); err != nil {
			return err
		}
	}
	return nil
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close closes the database. Closing a closed Store does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.dbmu.Lock()
	defer s.dbmu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: closing %s: %w", s.path, err)
	}
	return nil
}

// Get reads bucket/key into v, a pointer, and reports whether the key
// exists. v may be nil to only test whether it does.
func (s *Store) Get(bucket, key string, v any) (found bool, err error) {
	err = s.View(func(tx *Tx) error {
		found, err = tx.Get(bucket, key, v)
		return err
	})
	return found, err
}

// Put writes v as JSON to bucket/key.
func (s *Store) Put(bucket, key string, v any) error {
	return s.Update(func(tx *Tx) error { return tx.Put(bucket, key, v) })
}

// Delete removes bucket/key. Deleting a missing key is not an error.
func (s *Store) Delete(bucket, key string) error {
	return s.Update(func(tx *Tx) error { return tx.Delete(bucket, key) })
}

// List calls fn for every key in bucket, in byte order of the keys, with the
// key's raw JSON value. It stops at the first error fn returns and returns it.
func (s *Store) List(bucket string, fn func(key string, raw []byte) error) error {
	return s.View(func(tx *Tx) error { return tx.List(bucket, fn) })
}

// Update runs fn in a read-write transaction: every change fn makes is
// written together if fn returns nil, and none is if it returns an error,
// which Update returns. tx is valid only during fn.
func (s *Store) Update(fn func(tx *Tx) error) error {
	s.dbmu.RLock()
	defer s.dbmu.RUnlock()
	return s.closedErr(s.db.Update(func(btx *bbolt.Tx) error { return fn(&Tx{tx: btx}) }))
}

// View runs fn in a read-only transaction, which sees one consistent state
// of the database. tx is valid only during fn; its Put and Delete fail.
func (s *Store) View(fn func(tx *Tx) error) error {
	s.dbmu.RLock()
	defer s.dbmu.RUnlock()
	return s.closedErr(s.db.View(func(btx *bbolt.Tx) error { return fn(&Tx{tx: btx}) }))
}

// closedErr explains bbolt's error for a transaction on a closed database.
func (s *Store) closedErr(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("store: %s: %w", s.path, ErrClosed)
	}
	return err
}

// Tx is a transaction, given to the function passed to [Store.Update] or
// [Store.View]. Its methods mirror the Store's.
type Tx struct {
	tx *bbolt.Tx
}

func (t *Tx) bucket(name string) (*bbolt.Bucket, error) {
	if !slices.Contains(buckets, name) {
		return nil, fmt.Errorf("store: %w %q (known: %s)", ErrUnknownBucket, name, strings.Join(buckets, ", "))
	}
	b := t.tx.Bucket([]byte(name))
	if b == nil {
		return nil, fmt.Errorf("store: bucket %s is missing: %w", name, ErrDamaged)
	}
	return b, nil
}

func checkKey(bucket, key string) error {
	switch {
	case key == "":
		return fmt.Errorf("store: empty key in bucket %s", bucket)
	case len(key) > bbolt.MaxKeySize:
		return fmt.Errorf("store: key in bucket %s is %d bytes, more than %d", bucket, len(key), bbolt.MaxKeySize)
	}
	return nil
}

func checkWritable(bucket, key string) error {
	if err := checkKey(bucket, key); err != nil {
		return err
	}
	if bucket == BucketMeta && key == schemaKey {
		return fmt.Errorf("store: %s/%s is reserved for the schema version", BucketMeta, schemaKey)
	}
	return nil
}

// Get reads bucket/key into v, a pointer, and reports whether the key
// exists. v may be nil to only test whether it does.
func (t *Tx) Get(bucket, key string, v any) (bool, error) {
	b, err := t.bucket(bucket)
	if err != nil {
		return false, err
	}
	if err := checkKey(bucket, key); err != nil {
		return false, err
	}
	raw := b.Get([]byte(key))
	if raw == nil {
		return false, nil
	}
	if v == nil {
		return true, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("store: reading %s/%q: %w", bucket, key, err)
	}
	return true, nil
}

// Put writes v as JSON to bucket/key.
func (t *Tx) Put(bucket, key string, v any) error {
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	if err := checkWritable(bucket, key); err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encoding %s/%q: %w", bucket, key, err)
	}
	if err := b.Put([]byte(key), raw); err != nil {
		return fmt.Errorf("store: writing %s/%q: %w", bucket, key, err)
	}
	return nil
}

// Delete removes bucket/key. Deleting a missing key is not an error.
func (t *Tx) Delete(bucket, key string) error {
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	if err := checkWritable(bucket, key); err != nil {
		return err
	}
	if err := b.Delete([]byte(key)); err != nil {
		return fmt.Errorf("store: deleting %s/%q: %w", bucket, key, err)
	}
	return nil
}

// List calls fn for every key in bucket, in byte order of the keys, with a
// copy of the key's raw JSON value. fn may change the bucket (in an Update);
// the listing is of the keys as they were when List was called.
func (t *Tx) List(bucket string, fn func(key string, raw []byte) error) error {
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	type kv struct {
		k string
		v []byte
	}
	var all []kv
	if err := b.ForEach(func(k, v []byte) error {
		if v == nil {
			return nil // a nested bucket; schema 2 has none
		}
		all = append(all, kv{string(k), slices.Clone(v)})
		return nil
	}); err != nil {
		return fmt.Errorf("store: listing %s: %w", bucket, err)
	}
	for _, e := range all {
		if err := fn(e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}
