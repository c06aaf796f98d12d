package archive

import (
	"encoding/binary"
	"fmt"
)

// decoder reads a big-endian format. The first failure sticks: later reads
// return zeros, and err says what went wrong.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
	d.b = nil
}

func (d *decoder) next(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail("cut short: %d bytes wanted, %d left", n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) read(dst []byte) { copy(dst, d.next(len(dst))) }

func (d *decoder) uint16() uint16 {
	if v := d.next(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) uint32() uint32 {
	if v := d.next(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) uint64() uint64 {
	if v := d.next(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// bytes32 reads a 32-bit length and that many bytes, at most limit.
func (d *decoder) bytes32(limit int) []byte {
	n := d.uint32()
	if uint64(n) > uint64(limit) {
		d.fail("a field of %d bytes, at most %d", n, limit)
		return nil
	}
	return d.next(int(n))
}

// count reads a 32-bit count of items each at least min bytes long, and
// fails unless it is at most limit and that many items could fit in what is
// left, so that nothing is allocated for items that are not there.
func (d *decoder) count(limit, min int) int {
	n := d.uint32()
	if uint64(n) > uint64(limit) || uint64(n)*uint64(min) > uint64(len(d.b)) {
		d.fail("a count of %d in %d bytes", n, len(d.b))
		return 0
	}
	return int(n)
}
