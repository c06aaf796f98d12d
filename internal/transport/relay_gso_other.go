//go:build !linux

package transport

// gsoSegmentSize is 0 where quic-go does not use GSO: one packet per write.
func gsoSegmentSize([]byte) int { return 0 }
