//go:build unix && !aix

package home

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// errLocked means the lock is held elsewhere.
var errLocked = errors.New("lock held")

// tryLock takes an exclusive flock on f without waiting.
func tryLock(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return errLocked
		default:
			return err
		}
	}
}
