//go:build unix

package agent

import "syscall"

// setBroadcast sets SO_BROADCAST on the socket fd, ignoring failure.
func setBroadcast(fd uintptr) {
	_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
}
