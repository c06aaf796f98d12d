//go:build !unix

package agent

// setBroadcast does nothing where SO_BROADCAST is not set this way.
func setBroadcast(uintptr) {}
