package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/kith-project/kith/archive"
	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/seed"
)

// Archives travel on stream protocol 0x08 (archive_serve.go serves it).
// One stream carries one request and its answer: the opener writes its
// request, closes its side, and reads the answer, which the server writes
// once it has seen that close. Each is a frame
// (transport.WriteFrame: a 4-byte big-endian length, then the frame), a
// type byte and a body; a frame that announces a payload (put, peel,
// open, data) is followed on the stream by exactly that many raw bytes,
// at most archive.MaxBlobSize (disk.MaxBlobSize for put, which may carry
// a sealed index).
//
//	0x01 put      owner (32) ‖ name (32) ‖ size (8), then the blob   hold this blob for owner
//	0x02 get      name (32)                                          send me the blob
//	0x03 has      name (32)                                          do you hold it?
//	0x04 root     (empty)                                            Merkle root of what you hold for my user
//	0x05 buckets  bits (1)                                           the roots of its 2^bits buckets
//	0x06 names    bits (1) ‖ bucket (4)…                             the names in those buckets (none: all)
//	0x07 peel     size (8), then a blob                              own devices: peel its outer layer
//	0x08 open     size (8), then an inner layer                      own devices: open it, send the part
//	0x09 place    (empty)                                            own devices: your archive placement
//	0x0a peelname name (32)                                          own devices: peel the outer layer of
//	                                                                 a blob you hold, send the inner layer
//	0x0b delete   owner (32) ‖ name (32)…, 1 to maxArDelete names     friends: delete these blobs you hold
//	                                                                 for owner (superseded indexes)
//
//	0x81 ok       (empty)
//	0x82 data     size (8), then the bytes                           a blob, an inner layer or a part
//	0x83 refused  code (1) ‖ reason (printable ASCII, ≤ 200 bytes)
//	0x84 root     root (32)
//	0x85 roots    archive.AppendRoots form
//	0x86 names    archive.AppendNames form
//	0x87 has      0 or 1 (1)
//
// The answer to place is data: the placement as JSON (archive_state.go's
// archiveDoc). A part sent as data is archive ID (16) ‖ index (4) ‖ count (4) ‖ data.
// Owners: an own device's requests are about this user's blobs; a
// friend's device may put, get, list and delete only its own user's
// blobs, and may not peel or open. Delete is for friends' devices only:
// each own device deletes from its own folder, following the placement.
// It is answered ok when every name is gone, held before or not.
const protoArchive byte = 0x08

// Frame types.
const (
	arPut     byte = 0x01
	arGet     byte = 0x02
	arHas     byte = 0x03
	arRoot    byte = 0x04
	arBuckets byte = 0x05
	arNames   byte = 0x06
	arPeel    byte = 0x07
	arOpen    byte = 0x08
	arPlace   byte = 0x09
	arPeelN   byte = 0x0a
	arDelete  byte = 0x0b

	arOK      byte = 0x81
	arData    byte = 0x82
	arRefused byte = 0x83
	arRootIs  byte = 0x84
	arRoots   byte = 0x85
	arNameIs  byte = 0x86
	arHasIs   byte = 0x87
)

// Refusal codes.
const (
	arCodeBad     byte = 1 // malformed, or a blob that does not match its name
	arCodeQuota   byte = 2 // past the owner's quota on this relay
	arCodeMissing byte = 3 // this device does not hold that blob
	arCodeDenied  byte = 4 // not for this peer (a friend asking to peel)
	arCodeKey     byte = 5 // this device's key does not open that layer
	arCodeFailed  byte = 6 // this device could not do it
)

// Limits.
const (
	maxArReason  = 200
	maxArBuckets = 1 << 12
	maxArNames   = (transport.MaxFrameSize - 8) / 32
	maxArDelete  = 64 // names in one delete request
)

// arFrame is one decoded frame; which fields are set depends on Type.
type arFrame struct {
	Type    byte
	Owner   seed.UserPublic    // put, delete
	Name    archive.BlobName   // put, get, has
	Size    int64              // put, peel, open, data: the raw bytes that follow
	Bits    int                // buckets, names
	Buckets []int              // names
	Code    byte               // refused
	Reason  string             // refused
	Root    archive.Root       // root
	Roots   []archive.Root     // roots
	Names   []archive.BlobName // names, delete
	Has     bool
}

var errArFrame = errors.New("archive frame")

// maxPayload is the most raw bytes a frame of type t may announce.
func maxPayload(t byte) int64 {
	if t == arPut || t == arData {
		return archive.MaxSealedIndexSize
	}
	return archive.MaxBlobSize
}

// encodeArFrame returns f's bytes.
func encodeArFrame(f arFrame) ([]byte, error) {
	b := []byte{f.Type}
	switch f.Type {
	case arPut:
		b = append(append(b, f.Owner[:]...), f.Name[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(f.Size))
	case arGet, arHas, arPeelN:
		b = append(b, f.Name[:]...)
	case arRoot, arOK, arPlace:
	case arDelete:
		if len(f.Names) == 0 || len(f.Names) > maxArDelete {
			return nil, fmt.Errorf("%w: a delete of %d names", errArFrame, len(f.Names))
		}
		b = append(b, f.Owner[:]...)
		for _, n := range f.Names {
			b = append(b, n[:]...)
		}
	case arBuckets:
		b = append(b, byte(f.Bits))
	case arNames:
		b = append(b, byte(f.Bits))
		for _, k := range f.Buckets {
			b = binary.BigEndian.AppendUint32(b, uint32(k))
		}
	case arPeel, arOpen, arData:
		b = binary.BigEndian.AppendUint64(b, uint64(f.Size))
	case arRefused:
		b = append(append(b, f.Code), clipString(f.Reason, maxArReason)...)
	case arRootIs:
		b = append(b, f.Root[:]...)
	case arRoots:
		return archive.AppendRoots(b, f.Roots)
	case arNameIs:
		b = archive.AppendNames(b, f.Names)
	case arHasIs:
		v := byte(0)
		if f.Has {
			v = 1
		}
		b = append(b, v)
	default:
		return nil, fmt.Errorf("%w: unknown type %#02x", errArFrame, f.Type)
	}
	if len(b) > transport.MaxFrameSize {
		return nil, fmt.Errorf("%w: %d bytes", errArFrame, len(b))
	}
	return b, nil
}

// decodeArFrame parses one frame. It allocates at most len(b) more bytes.
func decodeArFrame(b []byte) (arFrame, error) {
	if len(b) == 0 {
		return arFrame{}, fmt.Errorf("%w: empty", errArFrame)
	}
	f := arFrame{Type: b[0]}
	body := b[1:]
	exact := func(n int) error {
		if len(body) != n {
			return fmt.Errorf("%w %#02x: %d bytes, want %d", errArFrame, f.Type, len(body), n)
		}
		return nil
	}
	size := func(at int) error {
		v := binary.BigEndian.Uint64(body[at:])
		if v == 0 || v > uint64(maxPayload(f.Type)) {
			return fmt.Errorf("%w %#02x: a payload of %d bytes", errArFrame, f.Type, v)
		}
		f.Size = int64(v)
		return nil
	}
	bits := func() error {
		f.Bits = int(body[0])
		if f.Bits < 1 || f.Bits > archive.MaxBucketBits {
			return fmt.Errorf("%w: %d bucket bits", errArFrame, f.Bits)
		}
		return nil
	}
	switch f.Type {
	case arPut:
		if err := exact(72); err != nil {
			return arFrame{}, err
		}
		copy(f.Owner[:], body[:32])
		copy(f.Name[:], body[32:64])
		if err := size(64); err != nil {
			return arFrame{}, err
		}
	case arGet, arHas, arPeelN:
		if err := exact(32); err != nil {
			return arFrame{}, err
		}
		copy(f.Name[:], body)
	case arRoot, arOK, arPlace:
		if err := exact(0); err != nil {
			return arFrame{}, err
		}
	case arDelete:
		if len(body) < 64 || len(body)%32 != 0 || len(body)/32-1 > maxArDelete {
			return arFrame{}, fmt.Errorf("%w: a delete of %d bytes", errArFrame, len(body))
		}
		copy(f.Owner[:], body[:32])
		for i := 32; i < len(body); i += 32 {
			f.Names = append(f.Names, archive.BlobName(body[i:i+32]))
		}
	case arBuckets:
		if err := exact(1); err != nil {
			return arFrame{}, err
		}
		if err := bits(); err != nil {
			return arFrame{}, err
		}
	case arNames:
		if len(body) < 1 || (len(body)-1)%4 != 0 || (len(body)-1)/4 > maxArBuckets {
			return arFrame{}, fmt.Errorf("%w: a names request of %d bytes", errArFrame, len(body))
		}
		if err := bits(); err != nil {
			return arFrame{}, err
		}
		for i := 1; i < len(body); i += 4 {
			k := binary.BigEndian.Uint32(body[i:])
			if k >= 1<<f.Bits {
				return arFrame{}, fmt.Errorf("%w: bucket %d of %d bits", errArFrame, k, f.Bits)
			}
			f.Buckets = append(f.Buckets, int(k))
		}
	case arPeel, arOpen, arData:
		if err := exact(8); err != nil {
			return arFrame{}, err
		}
		if err := size(0); err != nil {
			return arFrame{}, err
		}
	case arRefused:
		if len(body) < 1 || len(body)-1 > maxArReason {
			return arFrame{}, fmt.Errorf("%w: a refusal of %d bytes", errArFrame, len(body))
		}
		f.Code, f.Reason = body[0], clipString(string(body[1:]), maxArReason)
	case arRootIs:
		if err := exact(32); err != nil {
			return arFrame{}, err
		}
		copy(f.Root[:], body)
	case arRoots:
		roots, n, err := archive.ParseRoots(body)
		if err != nil {
			return arFrame{}, fmt.Errorf("%w: %w", errArFrame, err)
		}
		f.Roots, f.Bits = roots, n
	case arNameIs:
		names, err := archive.ParseNames(body)
		if err != nil {
			return arFrame{}, fmt.Errorf("%w: %w", errArFrame, err)
		}
		f.Names = names
	case arHasIs:
		if err := exact(1); err != nil {
			return arFrame{}, err
		}
		if body[0] > 1 {
			return arFrame{}, fmt.Errorf("%w: has %d", errArFrame, body[0])
		}
		f.Has = body[0] == 1
	default:
		return arFrame{}, fmt.Errorf("%w: unknown type %#02x", errArFrame, f.Type)
	}
	return f, nil
}

// isArRequest reports whether t is a frame an opener sends.
func isArRequest(t byte) bool { return t >= arPut && t <= arDelete }

// writeArFrame writes f and then payload, which must be f.Size bytes.
func writeArFrame(w io.Writer, f arFrame, payload []byte) error {
	if f.Size != int64(len(payload)) {
		return fmt.Errorf("%w: %d bytes announced, %d given", errArFrame, f.Size, len(payload))
	}
	b, err := encodeArFrame(f)
	if err != nil {
		return err
	}
	if err := transport.WriteFrame(w, b); err != nil {
		return err
	}
	if len(payload) > 0 {
		_, err = w.Write(payload)
	}
	return err
}

// readArFrame reads one frame and the payload it announces, if any, into
// a buffer of exactly that size; progress, if set, is told of the bytes
// as they come.
func readArFrame(r io.Reader, progress func(int)) (arFrame, []byte, error) {
	b, err := transport.ReadFrame(r, transport.MaxFrameSize)
	if err != nil {
		return arFrame{}, nil, err
	}
	f, err := decodeArFrame(b)
	if err != nil || f.Size == 0 {
		return f, nil, err
	}
	payload := make([]byte, f.Size)
	for off := 0; off < len(payload); {
		end := min(off+256<<10, len(payload))
		if _, err := io.ReadFull(r, payload[off:end]); err != nil {
			return arFrame{}, nil, fmt.Errorf("reading a payload of %d bytes: %w", f.Size, err)
		}
		if progress != nil {
			progress(end - off)
		}
		off = end
	}
	return f, payload, nil
}

// encodePart is a part as the open answer carries it.
func encodePart(p archive.Part) []byte {
	b := make([]byte, 0, 24+len(p.Data))
	b = append(b, p.Archive[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(p.Index))
	b = binary.BigEndian.AppendUint32(b, uint32(p.Count))
	return append(b, p.Data...)
}

// decodePart parses an open answer's part.
func decodePart(b []byte) (archive.Part, error) {
	if len(b) < 24 {
		return archive.Part{}, fmt.Errorf("%w: a part of %d bytes", errArFrame, len(b))
	}
	var p archive.Part
	copy(p.Archive[:], b[:16])
	idx, n := binary.BigEndian.Uint32(b[16:]), binary.BigEndian.Uint32(b[20:])
	if n == 0 || n > archive.MaxParts || idx >= n {
		return archive.Part{}, fmt.Errorf("%w: part %d of %d", errArFrame, idx, n)
	}
	p.Index, p.Count, p.Data = int(idx), int(n), b[24:]
	return p, nil
}
