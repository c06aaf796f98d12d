package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
)

// MaxFrameSize is the largest frame payload, 1 MiB.
const MaxFrameSize = 1 << 20

const frameHeaderSize = 4

// Frame errors.
var (
	// ErrFrameTooLarge: a frame's length exceeds the limit.
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrFrameTruncated: the stream ended inside a frame.
	ErrFrameTruncated = errors.New("transport: frame truncated")
)

// WriteFrame writes b as one frame: its length as 4 bytes big-endian, then b.
// b may hold at most MaxFrameSize bytes.
func WriteFrame(w io.Writer, b []byte) error {
	if len(b) > MaxFrameSize {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrFrameTooLarge, len(b), MaxFrameSize)
	}
	var hdr [frameHeaderSize]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	bufs := net.Buffers{hdr[:], b}
	if _, err := bufs.WriteTo(w); err != nil {
		return fmt.Errorf("transport: writing frame: %w", err)
	}
	return nil
}

// ReadFrame reads one frame and returns its payload. limit bounds the payload
// size; a limit of zero or less, or above MaxFrameSize, means MaxFrameSize. It
// returns io.EOF, unwrapped, when r ends cleanly before a frame,
// ErrFrameTruncated when r ends inside one, and ErrFrameTooLarge for a
// length above limit (without reading the payload).
func ReadFrame(r io.Reader, limit int) ([]byte, error) {
	if limit <= 0 || limit > MaxFrameSize {
		limit = MaxFrameSize
	}
	var hdr [frameHeaderSize]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		switch {
		case errors.Is(err, io.EOF) && n == 0:
			return nil, io.EOF
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, fmt.Errorf("%w: stream ended after %d of %d header bytes", ErrFrameTruncated, n, frameHeaderSize)
		default:
			return nil, fmt.Errorf("transport: reading frame header: %w", err)
		}
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if uint64(size) > uint64(limit) {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrFrameTooLarge, size, limit)
	}
	b, n, err := readGrowing(r, int(size))
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: stream ended after %d of %d payload bytes", ErrFrameTruncated, n, size)
		}
		return nil, fmt.Errorf("transport: reading frame payload: %w", err)
	}
	return b, nil
}

// frameChunk is how much ReadFrame allocates ahead of the bytes it has
// received: a frame's buffer grows with its data, never with the length
// its header announces, so that a peer that announces big frames and sends
// nothing costs nothing.
const frameChunk = 4 << 10

// readGrowing reads exactly size bytes from r into a buffer that starts at
// frameChunk bytes and doubles as the data arrives; it returns the bytes
// read so far with the error.
func readGrowing(r io.Reader, size int) ([]byte, int, error) {
	b := make([]byte, 0, min(size, frameChunk))
	for len(b) < size {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(size-len(b), max(cap(b), frameChunk)))
		}
		n, err := r.Read(b[len(b):min(cap(b), size)])
		b = b[:len(b)+n]
		if err != nil {
			if len(b) == size {
				break
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, len(b), err
		}
	}
	return b, len(b), nil
}
