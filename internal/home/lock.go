package home

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// LockName is the name of the lock file inside a home folder.
const LockName = "lock"

// pidRetries and pidRetryDelay bound how long Lock waits for the holder of a
// lock to finish writing its process ID, which it does right after taking the
// lock. The whole wait stays far below the one second a person may wait.
const (
	pidRetries    = 5
	pidRetryDelay = 20 * time.Millisecond
)

// InUseError is the error [Lock] returns when another process holds the home
// folder. It matches [ErrInUse] with [errors.Is].
type InUseError struct {
	Dir string // the home folder
	PID int    // the holder's process ID, or 0 when it could not be read
}

func (e *InUseError) Error() string {
	holder := "another process"
	if e.PID > 0 {
		holder = "pid " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("home %s is in use by %s", e.Dir, holder)
}

// Is reports whether target is [ErrInUse].
func (e *InUseError) Is(target error) bool { return target == ErrInUse }

// Lockfile is a held lock on a home folder, returned by [Lock]. Its methods
// are safe for concurrent use.
type Lockfile struct {
	path string // constant after Lock

	mu sync.Mutex
	f  *os.File // guarded by mu; nil once closed
}

// Lock takes the exclusive lock of the home folder dir, which must exist (see
// [Ensure]), and records the calling process's ID in it. If another process,
// or another Lock in this process, holds it, Lock fails at once with an
// [*InUseError] that matches [ErrInUse] and names the holder's process ID.
// A lock file left by a process that has exited does not block.
func Lock(dir string) (*Lockfile, error) {
	path := filepath.Join(dir, LockName)
	f, err := OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		if isLinkErr(path, err) {
			return nil, fmt.Errorf("home: the lock file %s: %w", path, ErrLink)
		}
		return nil, fmt.Errorf("home: opening the lock file: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("home: the lock file %s is not a regular file", path)
	}
	if err := tryLock(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			abs, absErr := filepath.Abs(dir)
			if absErr != nil {
				abs = dir
			}
			return nil, &InUseError{Dir: abs, PID: holderPID(path)}
		}
		return nil, fmt.Errorf("home: locking %s: %w", path, err)
	}
	if err := writePID(f, os.Getpid()); err != nil {
		f.Close() // releases the lock
		return nil, fmt.Errorf("home: writing our process ID to %s: %w", path, err)
	}
	return &Lockfile{path: path, f: f}, nil
}

// Path returns the path of the lock file.
func (l *Lockfile) Path() string { return l.path }

// Close clears the process ID from the lock file and releases the lock.
// Closing an already closed Lockfile does nothing and returns nil.
func (l *Lockfile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	// Clear the ID while we still hold the lock, so nobody reads a stale one.
	truncErr := f.Truncate(0)
	if err := f.Close(); err != nil {
		return fmt.Errorf("home: releasing %s: %w", l.path, err)
	}
	if truncErr != nil {
		return fmt.Errorf("home: clearing %s: %w", l.path, truncErr)
	}
	return nil
}

func writePID(f *os.File, pid int) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(pid)+"\n"), 0)
	return err
}

// holderPID reads the process ID that the holder of the lock at path wrote,
// retrying briefly in case the holder has just taken the lock and not yet
// written it. It returns 0 when there is no valid ID.
func holderPID(path string) int {
	for i := 0; ; i++ {
		if pid := readPID(path); pid > 0 || i == pidRetries {
			return pid
		}
		time.Sleep(pidRetryDelay)
	}
}

func readPID(path string) int {
	f, err := OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return 0
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, 32))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(buf)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// isLinkErr reports whether opening path failed because it is a symbolic
// link (ELOOP from O_NOFOLLOW, or ErrLink).
func isLinkErr(path string, err error) bool {
	if errors.Is(err, ErrLink) {
		return true
	}
	fi, lerr := os.Lstat(path)
	return lerr == nil && fi.Mode()&os.ModeSymlink != 0
}

// IsLinkErr reports whether opening path with [OpenFile] failed because
// path is a symbolic link.
func IsLinkErr(path string, err error) bool { return err != nil && isLinkErr(path, err) }
