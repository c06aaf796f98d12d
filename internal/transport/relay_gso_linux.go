package transport

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// gsoSegmentSize returns the segment size of a UDP_SEGMENT control message
// in oob (GSO: one write carries several packets of that size, the last
// possibly shorter), or 0 when there is none.
func gsoSegmentSize(oob []byte) int {
	if len(oob) == 0 {
		return 0
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_UDP && m.Header.Type == unix.UDP_SEGMENT && len(m.Data) >= 2 {
			return int(binary.NativeEndian.Uint16(m.Data))
		}
	}
	return 0
}
