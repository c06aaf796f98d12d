package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
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
	b := make([]byte, size)
	if n, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: stream ended after %d of %d payload bytes", ErrFrameTruncated, n, size)
		}
		return nil, fmt.Errorf("transport: reading frame payload: %w", err)
	}
	return b, nil
}
