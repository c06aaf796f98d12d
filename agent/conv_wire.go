package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/seed"
)

// Conversations travel on stream protocol 0x07 (package conversation
// makes and checks the envelopes; this file carries them). An exchange is
// one batch: the opener writes up to maxConvFrames request frames
// (transport.WriteFrame: a 4-byte big-endian length, then the frame),
// closes its side, and reads one answer frame per request, in order. The
// server reads the whole batch before it answers, so that it can commit
// every envelope of it in one bbolt transaction.
//
// A frame is its type byte and a body:
//
//	0x01 deliver  envelope                    an envelope for the server itself
//	0x02 forward  device (32) ‖ envelope      store-and-forward to device, which the
//	                                          server knows (own devices and friends only)
//	0x03 probe    device (32)                 can the server reach device?
//	0x04 sync     conversation ID (32)        own devices only: send me that
//	                                          conversation's envelopes
//
//	0x81 ack      ack envelope, or empty      the envelope was stored (or was a
//	                                          duplicate, or was an ack itself)
//	0x82 queued   (empty)                     the forward is in the server's queue
//	0x83 refused  code (1) ‖ reason           reason: at most maxConvReason bytes of
//	                                          printable ASCII
//	0x84 reach    state (1)                   0 unknown, 1 known but offline, 2 online
//	0x85 envelopes (uvarint length ‖ envelope)…   the answer to sync
//
// Bounds: a frame is at most transport.MaxFrameSize bytes, a batch at most
// maxConvFrames frames and maxConvBatch bytes; a stream that goes past
// them is reset. An envelope is not looked at here beyond its length: the
// conversation package's Inspect and Receive check it.
const protoConv byte = 0x07

// Frame types.
const (
	convDeliver   byte = 0x01
	convForward   byte = 0x02
	convProbe     byte = 0x03
	convSync      byte = 0x04
	convAck       byte = 0x81
	convQueued    byte = 0x82
	convRefused   byte = 0x83
	convReach     byte = 0x84
	convEnvelopes byte = 0x85
)

// Refusal codes.
const (
	convCodeBad     byte = 1 // not an envelope, or one that does not verify
	convCodeUnknown byte = 2 // forward to a device the server does not know
	convCodeQuota   byte = 3 // the origin's forward quota is full
	convCodeHeld    byte = 4 // held until what precedes it arrives: send again later
	convCodeRefused byte = 5 // refused for good (not a member, decided, …)
	convCodeFailed  byte = 6 // the server could not store it
	convCodeDenied  byte = 7 // not for this opener (sync from a friend)
)

// Reach states of a probe's answer.
const (
	reachUnknown byte = 0
	reachOffline byte = 1
	reachOnline  byte = 2
)

// Limits of the stream.
const (
	maxConvFrames  = 256
	maxConvBatch   = 8 << 20
	maxConvReason  = 200
	maxConvSyncEnv = 1024 // envelopes in one sync answer
)

// convFrame is one decoded frame; which fields are set depends on Type.
type convFrame struct {
	Type      byte
	Device    seed.DevicePublic // forward, probe
	Conv      [32]byte          // sync
	Envelope  []byte            // deliver, forward, ack
	Code      byte              // refused
	Reason    string            // refused
	Reach     byte              // reach
	Envelopes [][]byte          // envelopes
}

var errConvFrame = errors.New("conversation frame")

// encodeConvFrame writes f's bytes.
func encodeConvFrame(f convFrame) []byte {
	b := []byte{f.Type}
	switch f.Type {
	case convDeliver, convAck:
		b = append(b, f.Envelope...)
	case convForward:
		b = append(append(b, f.Device[:]...), f.Envelope...)
	case convProbe:
		b = append(b, f.Device[:]...)
	case convSync:
		b = append(b, f.Conv[:]...)
	case convRefused:
		b = append(append(b, f.Code), clipString(f.Reason, maxConvReason)...)
	case convReach:
		b = append(b, f.Reach)
	case convEnvelopes:
		for _, e := range f.Envelopes {
			b = binary.AppendUvarint(b, uint64(len(e)))
			b = append(b, e...)
		}
	}
	return b
}

// decodeConvFrame parses one frame. The slices it returns alias b.
func decodeConvFrame(b []byte) (convFrame, error) {
	if len(b) == 0 {
		return convFrame{}, fmt.Errorf("%w: empty", errConvFrame)
	}
	f := convFrame{Type: b[0]}
	body := b[1:]
	need := func(n int) error {
		if len(body) < n {
			return fmt.Errorf("%w %#02x: %d bytes, want at least %d", errConvFrame, f.Type, len(body), n)
		}
		return nil
	}
	exact := func(n int) error {
		if len(body) != n {
			return fmt.Errorf("%w %#02x: %d bytes, want %d", errConvFrame, f.Type, len(body), n)
		}
		return nil
	}
	switch f.Type {
	case convDeliver:
		if err := need(1); err != nil {
			return convFrame{}, err
		}
		f.Envelope = body
	case convAck:
		f.Envelope = body
	case convForward:
		if err := need(33); err != nil {
			return convFrame{}, err
		}
		copy(f.Device[:], body[:32])
		f.Envelope = body[32:]
	case convProbe:
		if err := exact(32); err != nil {
			return convFrame{}, err
		}
		copy(f.Device[:], body)
	case convSync:
		if err := exact(32); err != nil {
			return convFrame{}, err
		}
		copy(f.Conv[:], body)
	case convQueued:
		if err := exact(0); err != nil {
			return convFrame{}, err
		}
	case convRefused:
		if err := need(1); err != nil {
			return convFrame{}, err
		}
		if len(body)-1 > maxConvReason {
			return convFrame{}, fmt.Errorf("%w: a reason of %d bytes", errConvFrame, len(body)-1)
		}
		f.Code, f.Reason = body[0], clipString(string(body[1:]), maxConvReason)
	case convReach:
		if err := exact(1); err != nil {
			return convFrame{}, err
		}
		if body[0] > reachOnline {
			return convFrame{}, fmt.Errorf("%w: reach state %d", errConvFrame, body[0])
		}
		f.Reach = body[0]
	case convEnvelopes:
		for len(body) > 0 {
			n, k := binary.Uvarint(body)
			if k <= 0 || n == 0 || n > uint64(len(body)-k) {
				return convFrame{}, fmt.Errorf("%w: a bad envelope length", errConvFrame)
			}
			if len(f.Envelopes) == maxConvSyncEnv {
				return convFrame{}, fmt.Errorf("%w: more than %d envelopes", errConvFrame, maxConvSyncEnv)
			}
			f.Envelopes = append(f.Envelopes, body[k:k+int(n)])
			body = body[k+int(n):]
		}
	default:
		return convFrame{}, fmt.Errorf("%w: unknown type %#02x", errConvFrame, f.Type)
	}
	return f, nil
}

// isRequest reports whether t is a frame an opener sends.
func isRequest(t byte) bool { return t >= convDeliver && t <= convSync }

// writeConvFrame writes one frame.
func writeConvFrame(w io.Writer, f convFrame) error {
	return transport.WriteFrame(w, encodeConvFrame(f))
}

// readConvFrame reads one frame; io.EOF, unwrapped, at the clean end of
// the stream.
func readConvFrame(r io.Reader) (convFrame, int, error) {
	b, err := transport.ReadFrame(r, transport.MaxFrameSize)
	if err != nil {
		return convFrame{}, 0, err
	}
	f, err := decodeConvFrame(b)
	return f, len(b), err
}
