//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package cli

import "golang.org/x/sys/unix"

const (
	ioctlGetTermios = unix.TIOCGETA
	ioctlSetTermios = unix.TIOCSETA
)

// flushInput would discard unread terminal input; the phrase reader reads
// until no input is pending, so nothing is left behind in practice.
func flushInput(int) {}
