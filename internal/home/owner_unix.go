//go:build unix

package home

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkOwner refuses a folder that another user owns: its owner could
// replace any file in it, or plant a link that makes us write elsewhere.
func checkOwner(dir string, info fs.FileInfo) error {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("home: %s belongs to user %d, not to you (user %d): %w", dir, st.Uid, uid, ErrNotYours)
	}
	return nil
}

// OpenFile opens path like os.OpenFile, but refuses to follow a symbolic
// link in its last element, so that a link planted in a home folder cannot
// make kith read or write the file it points to.
func OpenFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(path, flag|syscall.O_NOFOLLOW, perm)
}
