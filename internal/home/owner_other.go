//go:build !unix

package home

import (
	"io/fs"
	"os"
)

// checkOwner has no owner to check on this platform.
func checkOwner(string, fs.FileInfo) error { return nil }

// OpenFile opens path like os.OpenFile, first refusing a path that is a
// symbolic link (this platform has no O_NOFOLLOW).
func OpenFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil, &os.PathError{Op: "open", Path: path, Err: ErrLink}
	}
	return os.OpenFile(path, flag, perm)
}
