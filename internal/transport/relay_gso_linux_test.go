package transport

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// segmentCmsg makes the UDP_SEGMENT control message quic-go sends with a
// GSO write of segments of size bytes.
func segmentCmsg(size uint16) []byte {
	b := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], size)
	return b
}

func TestGSOSegmentSize(t *testing.T) {
	if got := gsoSegmentSize(segmentCmsg(1200)); got != 1200 {
		t.Fatalf("gsoSegmentSize = %d, want 1200", got)
	}
	if got := gsoSegmentSize(nil); got != 0 {
		t.Fatalf("gsoSegmentSize(nil) = %d", got)
	}
	if got := gsoSegmentSize([]byte{1, 2, 3}); got != 0 {
		t.Fatalf("gsoSegmentSize(garbage) = %d", got)
	}
}
