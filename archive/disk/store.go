// Package disk keeps sealed archive blobs in a folder, one file per blob,
// named by the blob's SHA-256.
//
// # Layout
//
// The folder holds one subfolder per owner, the user the blobs belong to,
// named by the owner's user ID (64 hex digits); inside it, one file per blob
// named by the blob's name (64 hex digits), mode 0600:
//
//	DIR/<owner user ID>/<blob name>
//	DIR/<owner user ID>/.tmp-<random>   (a write under way)
//
// Blobs held for the store's own user (Options.Self) count against no
// quota. Blobs held for anyone else are held as an archive relay for a
// friend, within a per-owner quota.
//
// # Crash safety
//
// Put writes a temporary file, syncs it, renames it to the blob's name and
// syncs the folder, so a blob file is either absent or whole: a crash
// (SIGKILL, power loss) leaves at most a temporary file, which Open removes.
// A file damaged on disk is reported and removed, not counted, when it is
// read and its hash does not match its name: by Get, on every read; by
// Verify, which reads them all; and by Open with Options.Verify. Without
// it Open only lists the folder and checks sizes, so that a device holding
// gigabytes of archives starts at once (the agent runs Verify in the
// background after it starts).
package disk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/kith-project/kith/archive"
	"github.com/kith-project/kith/seed"
)

// DefaultQuota is the quota of an owner other than Self, unless set: 1 GiB.
const DefaultQuota = 1 << 30

// MaxBlobSize bounds one stored blob: a sealed index, the largest sealed
// thing.
const MaxBlobSize = archive.MaxSealedIndexSize

const tmpPrefix = ".tmp-"

// Errors callers branch on.
var (
	// ErrNotFound means the store holds no such blob.
	ErrNotFound = errors.New("archive store: no such blob")
	// ErrQuota means a relay's quota for an owner has no room for a blob;
	// the error is a *QuotaError.
	ErrQuota = errors.New("archive store: over the relay quota")
)

// QuotaError is the error of a Put past an owner's quota.
type QuotaError struct {
	Owner seed.UserPublic
	// Used and Quota are the owner's bytes held and quota; Size is the
	// refused blob's.
	Used, Quota, Size int64
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("archive store: the relay quota for user %s is full: %s of %s used, a blob of %s does not fit (the relay's user can raise it with `kith archive quota`)",
		e.Owner.Short(), sizeString(e.Used), sizeString(e.Quota), sizeString(e.Size))
}

// Is makes errors.Is(err, ErrQuota) true.
func (e *QuotaError) Is(target error) bool { return target == ErrQuota }

// Options configure a Store.
type Options struct {
	// Self is the store's own user, whose blobs count against no quota.
	Self seed.UserPublic
	// Quota is each other owner's quota in bytes, unless SetQuota says
	// otherwise: 0 means DefaultQuota; negative means none accepted.
	Quota int64
	// Logger gets one line per removed leftover or damaged blob; nil means
	// slog.Default().
	Logger *slog.Logger
	// Verify has Open read every blob and check it against its name, as
	// Verify does; without it Open checks only the files' sizes.
	Verify bool
}

// Info describes one stored blob.
type Info struct {
	Name  archive.BlobName
	Size  int64
	Owner seed.UserPublic
}

// Report is what Open found on disk.
type Report struct {
	// Blobs and Bytes count the blobs that checked out.
	Blobs int
	Bytes int64
	// Leftovers are temporary files of interrupted writes, removed.
	Leftovers []string
	// Damaged are blob files whose content did not match their name (or
	// could not be read), removed and not counted, each with the reason.
	Damaged []Damage
	// Unknown are files and folders that are neither blobs nor leftovers,
	// left alone.
	Unknown []string
}

// Damage is a damaged blob file Open or Get found.
type Damage struct {
	Path   string
	Reason string
}

// Store is a folder of sealed blobs. Its methods are safe for concurrent
// use. It keeps no file open and runs no goroutine, so it has nothing to
// close.
type Store struct {
	// Constant after Open.
	dir    string
	self   seed.UserPublic
	quota  int64
	logger *slog.Logger

	mu     sync.Mutex
	blobs  map[archive.BlobName]map[seed.UserPublic]int64 // guarded by mu: name → owner → size
	used   map[seed.UserPublic]int64                      // guarded by mu: bytes held or being written per owner
	quotas map[seed.UserPublic]int64                      // guarded by mu: per-owner quotas set
	// inflight holds a channel per blob being written, closed when the
	// write ends; guarded by mu.
	inflight map[putKey]chan struct{}
}

// Open opens the store in dir, creating it if needed, and scans it: it
// removes leftovers of interrupted writes, and checks every blob's size
// (with opts.Verify, its content against its name), removing those that
// fail. The report says what it found.
func Open(dir string, opts Options) (*Store, Report, error) {
	var rep Report
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, rep, fmt.Errorf("archive store: %w", err)
	}
	s := &Store{
		dir:    dir,
		self:   opts.Self,
		quota:  opts.Quota,
		logger: opts.Logger,
		blobs:  make(map[archive.BlobName]map[seed.UserPublic]int64),
		used:   make(map[seed.UserPublic]int64),
		quotas: make(map[seed.UserPublic]int64),

		inflight: make(map[putKey]chan struct{}),
	}
	if s.quota == 0 {
		s.quota = DefaultQuota
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	top, err := os.ReadDir(dir)
	if err != nil {
		return nil, rep, fmt.Errorf("archive store: %w", err)
	}
	for _, e := range top {
		owner, err := seed.ParseUserPublic(e.Name())
		if err != nil || !e.IsDir() {
			rep.Unknown = append(rep.Unknown, filepath.Join(dir, e.Name()))
			continue
		}
		if err := s.scanOwner(owner, opts.Verify, &rep); err != nil {
			return nil, rep, err
		}
	}
	return s, rep, nil
}

func (s *Store) scanOwner(owner seed.UserPublic, verify bool, rep *Report) error {
	odir := s.ownerDir(owner)
	entries, err := os.ReadDir(odir)
	if err != nil {
		return fmt.Errorf("archive store: %w", err)
	}
	removed := false
	for _, e := range entries {
		path := filepath.Join(odir, e.Name())
		if strings.HasPrefix(e.Name(), tmpPrefix) && e.Type().IsRegular() {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("archive store: removing a leftover: %w", err)
			}
			s.logger.Info("archive store: removed the leftover of an interrupted write", "path", path)
			rep.Leftovers = append(rep.Leftovers, path)
			removed = true
			continue
		}
		name, err := archive.ParseBlobName(e.Name())
		if err != nil || !e.Type().IsRegular() {
			rep.Unknown = append(rep.Unknown, path)
			continue
		}
		size, reason := checkFile(path, name, verify)
		if reason != "" {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("archive store: removing a damaged blob: %w", err)
			}
			s.logger.Warn("archive store: removed a damaged blob", "blob", name.Short(), "reason", reason)
			rep.Damaged = append(rep.Damaged, Damage{Path: path, Reason: reason})
			removed = true
			continue
		}
		s.add(owner, name, size)
		rep.Blobs++
		rep.Bytes += size
	}
	if removed {
		return syncDir(odir)
	}
	return nil
}

// checkFile returns a blob file's size, or why it is damaged: too large or
// empty, or (with content) bytes that do not hash to its name.
func checkFile(path string, name archive.BlobName, content bool) (int64, string) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err.Error()
	}
	if fi.Size() > MaxBlobSize {
		return 0, fmt.Sprintf("%d bytes, larger than any blob", fi.Size())
	}
	if fi.Size() == 0 {
		return 0, "an empty file"
	}
	if !content {
		return fi.Size(), ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err.Error()
	}
	if !name.Matches(b) {
		return 0, fmt.Sprintf("its content hashes to %s, not its name", archive.NameOf(b).Short())
	}
	return int64(len(b)), ""
}

// Verify reads every blob held and checks it against its name, removing
// those that fail as Get does, and returns them. A blob that cannot be read
// (a full file table, an I/O error) is not removed: Verify goes on, and
// returns those errors (some of them) with the damage found. It stops
// early, with ctx's error, when ctx ends. It may run while the store is in
// use: a blob put, read or deleted meanwhile is checked as it is then, or
// skipped if gone.
func (s *Store) Verify(ctx context.Context) ([]Damage, error) {
	type held struct {
		owner seed.UserPublic
		name  archive.BlobName
	}
	s.mu.Lock()
	all := make([]held, 0, len(s.blobs))
	for name, owners := range s.blobs {
		for o := range owners {
			all = append(all, held{o, name})
		}
	}
	s.mu.Unlock()
	var out []Damage
	var failed []error
	for _, h := range all {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if b, err := readBounded(s.path(h.owner, h.name)); err == nil && h.name.Matches(b) {
			continue
		}
		_, d, err := s.removeIfDamaged(h.owner, h.name)
		if err != nil {
			if len(failed) < 8 {
				failed = append(failed, err)
			}
			continue
		}
		if d != nil {
			out = append(out, *d)
		}
	}
	return out, errors.Join(failed...)
}

func (s *Store) add(owner seed.UserPublic, name archive.BlobName, size int64) {
	m := s.blobs[name]
	if m == nil {
		m = make(map[seed.UserPublic]int64)
		s.blobs[name] = m
	}
	m[owner] = size
	s.used[owner] += size
}

func (s *Store) ownerDir(owner seed.UserPublic) string { return filepath.Join(s.dir, owner.ID()) }

func (s *Store) path(owner seed.UserPublic, name archive.BlobName) string {
	return filepath.Join(s.ownerDir(owner), name.String())
}

// quotaOf returns owner's quota; the caller holds mu.
func (s *Store) quotaOf(owner seed.UserPublic) int64 {
	if q, ok := s.quotas[owner]; ok {
		return q
	}
	return s.quota
}

// SetQuota sets owner's quota in bytes; negative means none accepted. It
// does not remove blobs already held past it.
func (s *Store) SetQuota(owner seed.UserPublic, quota int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quotas[owner] = quota
}

// Usage returns the bytes held for owner and owner's quota (-1 for Self,
// who has none).
func (s *Store) Usage(owner seed.UserPublic) (used, quota int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if owner.Equal(s.self) {
		return s.used[owner], -1
	}
	return s.used[owner], max(s.quotaOf(owner), -1)
}

// Put stores a blob for owner, after checking that data hashes to name
// (else archive.ErrNameMismatch) and, for an owner other than Self, that it
// fits the owner's quota (else a *QuotaError). Putting a blob already held
// for owner does nothing. When Put returns nil the blob is on disk and
// synced.
func (s *Store) Put(owner seed.UserPublic, name archive.BlobName, data []byte) error {
	if len(data) > MaxBlobSize {
		return fmt.Errorf("archive store: %w: a blob of %d bytes, at most %d", archive.ErrTooLarge, len(data), MaxBlobSize)
	}
	if err := archive.CheckBlob(archive.Blob{Name: name, Data: data}); err != nil {
		return fmt.Errorf("archive store: refusing blob: %w", err)
	}
	size := int64(len(data))
	k := putKey{owner, name}
	s.mu.Lock()
	for {
		if _, ok := s.blobs[name][owner]; ok {
			s.mu.Unlock()
			return nil
		}
		wait, busy := s.inflight[k]
		if !busy {
			break
		}
		// The same blob is being written for the same owner: wait for that
		// write, then look again.
		s.mu.Unlock()
		<-wait
		s.mu.Lock()
	}
	if !owner.Equal(s.self) {
		q := s.quotaOf(owner)
		if q < 0 || s.used[owner]+size > q {
			err := &QuotaError{Owner: owner, Used: s.used[owner], Quota: max(q, 0), Size: size}
			s.mu.Unlock()
			return err
		}
	}
	s.used[owner] += size // reserved while writing
	done := make(chan struct{})
	s.inflight[k] = done
	s.mu.Unlock()

	err := s.write(owner, name, data)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inflight, k)
	close(done)
	s.used[owner] -= size
	if err != nil {
		return err
	}
	s.add(owner, name, size)
	return nil
}

type putKey struct {
	owner seed.UserPublic
	name  archive.BlobName
}

// write puts data in place atomically: temporary file, sync, rename, sync
// of the folder.
func (s *Store) write(owner seed.UserPublic, name archive.BlobName, data []byte) (err error) {
	odir := s.ownerDir(owner)
	_, statErr := os.Stat(odir)
	if err := os.MkdirAll(odir, 0o700); err != nil {
		return fmt.Errorf("archive store: %w", err)
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(odir, tmpPrefix+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("archive store: writing blob %s: %w", name.Short(), err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("archive store: writing blob %s: %w", name.Short(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("archive store: writing blob %s: %w", name.Short(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("archive store: writing blob %s: %w", name.Short(), err)
	}
	if err := os.Rename(tmp, s.path(owner, name)); err != nil {
		return fmt.Errorf("archive store: writing blob %s: %w", name.Short(), err)
	}
	if err := syncDir(odir); err != nil {
		return err
	}
	if statErr != nil {
		// The owner's folder is new: make its entry durable too.
		return syncDir(s.dir)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("archive store: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("archive store: syncing %s: %w", dir, err)
	}
	return nil
}

// Has reports whether the store holds the blob, for any owner.
func (s *Store) Has(name archive.BlobName) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.blobs[name]) > 0
}

// Get returns the blob's sealed bytes, read from disk and checked against
// its name. A blob that fails the check is removed from the store and Get
// returns an error wrapping archive.ErrNameMismatch, so that the caller
// fetches it again from another holder; an absent one gives ErrNotFound.
func (s *Store) Get(name archive.BlobName) ([]byte, error) {
	s.mu.Lock()
	var owners []seed.UserPublic
	for o := range s.blobs[name] {
		owners = append(owners, o)
	}
	s.mu.Unlock()
	if len(owners) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name.Short())
	}
	var damaged, failed error
	for _, o := range owners {
		b, err := readBounded(s.path(o, name))
		if err == nil && name.Matches(b) {
			return b, nil
		}
		good, d, rerr := s.removeIfDamaged(o, name)
		switch {
		case rerr != nil:
			failed = rerr // not damage: a read that failed
		case d != nil:
			damaged = fmt.Errorf("archive store: %w: blob %s: %s", archive.ErrNameMismatch, name.Short(), d.Reason)
		case good != nil:
			return good, nil // fine when looked at again (written meanwhile)
		}
	}
	if damaged != nil {
		return nil, damaged
	}
	if failed != nil {
		return nil, failed
	}
	return nil, fmt.Errorf("%w: %s", ErrNotFound, name.Short())
}

// removeIfDamaged looks at owner's file of blob name again, under mu with
// no write of it in flight (so a Put's rename cannot land in between), and
// removes it only if it is damaged: its content does not hash to its name,
// or it is empty or larger than any blob. A file that cannot be read is
// left alone and the error returned: a full file table or a passing I/O
// error is not damage. A file gone is dropped from the store. It returns
// the blob's bytes when the file is fine after all, and the damage when it
// removed the file.
func (s *Store) removeIfDamaged(owner seed.UserPublic, name archive.BlobName) ([]byte, *Damage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, busy := s.inflight[putKey{owner, name}]; busy {
		return nil, nil, nil
	}
	path := s.path(owner, name)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		s.dropLocked(owner, name)
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("archive store: %w", err)
	}
	var reason string
	switch {
	case !fi.Mode().IsRegular():
		reason = "not a regular file"
	case fi.Size() > MaxBlobSize:
		reason = fmt.Sprintf("%d bytes, larger than any blob", fi.Size())
	case fi.Size() == 0:
		reason = "an empty file"
	default:
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("archive store: reading blob %s: %w", name.Short(), err)
		}
		if name.Matches(b) {
			return b, nil, nil
		}
		reason = fmt.Sprintf("its content hashes to %s, not its name", archive.NameOf(b).Short())
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("archive store: removing a damaged blob: %w", err)
	}
	s.dropLocked(owner, name)
	s.logger.Warn("archive store: removed a damaged blob", "blob", name.Short(), "reason", reason)
	return nil, &Damage{Path: path, Reason: reason}, nil
}

func readBounded(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > MaxBlobSize {
		return nil, fmt.Errorf("%w: %d bytes, larger than any blob", archive.ErrNameMismatch, fi.Size())
	}
	return os.ReadFile(path)
}

func (s *Store) drop(owner seed.UserPublic, name archive.BlobName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropLocked(owner, name)
}

// dropLocked forgets owner's blob name; the caller holds mu.
func (s *Store) dropLocked(owner seed.UserPublic, name archive.BlobName) {
	if size, ok := s.blobs[name][owner]; ok {
		delete(s.blobs[name], owner)
		if len(s.blobs[name]) == 0 {
			delete(s.blobs, name)
		}
		s.used[owner] -= size
	}
}

// Delete removes the blob held for owner; deleting an absent blob does
// nothing.
func (s *Store) Delete(owner seed.UserPublic, name archive.BlobName) error {
	s.mu.Lock()
	_, ok := s.blobs[name][owner]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	if err := os.Remove(s.path(owner, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("archive store: deleting blob %s: %w", name.Short(), err)
	}
	s.drop(owner, name)
	return syncDir(s.ownerDir(owner))
}

// List returns every blob held, sorted by name, then owner.
func (s *Store) List() []Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Info
	for name, m := range s.blobs {
		for o, size := range m {
			out = append(out, Info{Name: name, Size: size, Owner: o})
		}
	}
	slices.SortFunc(out, func(a, b Info) int {
		if c := strings.Compare(a.Name.String(), b.Name.String()); c != 0 {
			return c
		}
		return strings.Compare(a.Owner.ID(), b.Owner.ID())
	})
	return out
}

// Names returns the sorted names of every blob held, for MerkleRoot and the
// diff protocol.
func (s *Store) Names() []archive.BlobName {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]archive.BlobName, 0, len(s.blobs))
	for n := range s.blobs {
		out = append(out, n)
	}
	return archive.SortNames(out)
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
