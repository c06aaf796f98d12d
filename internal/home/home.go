// Package home finds, creates and locks a device's home folder.
//
// A home folder is one device's state on disk: its sealed keys (package
// keystore), its database (package store) and the lock file described below.
// One kith process at a time owns a home folder; two agents sharing one would
// race on the database and answer for the same device twice.
//
// # Where the home folder is
//
// [Resolve] picks, in order: the --home flag, $KITH_HOME, $XDG_DATA_HOME/kith
// (only when XDG_DATA_HOME is an absolute path, as the XDG Base Directory
// specification requires), and ~/.local/share/kith. The result is always an
// absolute, cleaned path. [Ensure] creates it with mode 0700, and tightens an
// existing folder whose mode lets anyone else in.
//
// # A home that cannot be subverted
//
// A home folder that belongs to another user, or that anyone may write to,
// is refused ([ErrNotYours]): whoever can write there can plant a file or a
// link of their choosing. The files inside are opened with [OpenFile], which
// never follows a symbolic link, so a link named "lock" or "keys" makes kith
// fail instead of writing through it ([ErrLink]).
//
// # The lock file
//
// [Lock] takes an exclusive, non-blocking flock(2) on the file "lock" inside
// the home folder and writes the owner's process ID into it, as decimal ASCII
// followed by a newline. The kernel drops the flock when the owning process
// exits, however it exits, so a lock file left behind by a dead process never
// blocks anyone: only a live owner does. The process ID in the file is only
// used to tell a person which process holds the home ("in use by pid 1234").
// The file itself is never removed, because removing a lock file that another
// process has already opened would let two processes hold "the" lock at once.
package home

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvHome is the environment variable that names the home folder when no
// --home flag is given.
const EnvHome = "KITH_HOME"

// Resolve returns the absolute path of the home folder: flag when it is not
// empty, else $KITH_HOME, else $XDG_DATA_HOME/kith, else ~/.local/share/kith.
// It does not create the folder; see [Ensure].
func Resolve(flag string) (string, error) {
	dir := flag
	if dir == "" {
		dir = os.Getenv(EnvHome)
	}
	if dir == "" {
		// The XDG specification says relative values must be ignored.
		if xdg := os.Getenv("XDG_DATA_HOME"); xdg != "" && filepath.IsAbs(xdg) {
			dir = filepath.Join(xdg, "kith")
		}
	}
	if dir == "" {
		userHome, err := os.UserHomeDir()
		if err != nil {
			return "", &DefaultError{Err: err}
		}
		dir = filepath.Join(userHome, ".local", "share", "kith")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("home: making %q absolute: %w", dir, err)
	}
	return abs, nil
}

// Errors that callers branch on.
var (
	// ErrNotYours: the home folder belongs to another user, or anyone may
	// write to it.
	ErrNotYours = errors.New("the home folder is not safe to use")
	// ErrLink: a file in the home folder is a symbolic link.
	ErrLink = errors.New("a symbolic link where kith keeps a file of its own")
)

// Ensure creates dir and its parents with mode 0700 if needed. If dir already
// exists with a mode that lets the group or others in, Ensure tightens it to
// 0700. It fails when dir exists and is not a folder, belongs to another
// user, or may be written by anyone ([ErrNotYours]).
func Ensure(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("home: creating %s: %w", dir, err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("home: checking %s: %w", dir, err)
	}
	if !info.IsDir() {
		return &NotFolderError{Dir: dir}
	}
	if err := checkOwner(dir, info); err != nil {
		return err
	}
	if info.Mode().Perm()&0o002 != 0 && info.Mode()&os.ModeSticky == 0 {
		return fmt.Errorf("home: %s may be written by any user (mode %v): %w", dir, info.Mode().Perm(), ErrNotYours)
	}
	if info.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("home: tightening %s to mode 0700: %w", dir, err)
		}
	}
	return nil
}

// DefaultError is the error of [Resolve] when there is no default home
// folder, because the user's own home folder is unknown.
type DefaultError struct {
	Err error // why the user's home folder is unknown
}

func (e *DefaultError) Error() string {
	return "home: finding the default home folder: " + e.Err.Error()
}
func (e *DefaultError) Unwrap() error { return e.Err }

// NotFolderError is the error of [Ensure] when the home's path exists but
// is not a folder.
type NotFolderError struct {
	Dir string
}

func (e *NotFolderError) Error() string { return "home: " + e.Dir + " is not a folder" }

// ErrInUse means another process holds the home folder's lock.
var ErrInUse = errors.New("home is in use by another process")
