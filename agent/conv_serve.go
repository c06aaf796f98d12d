package agent

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/kith-project/kith/conversation"
	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// convStreamTimeout bounds one exchange of stream 0x07.
const convStreamTimeout = 60 * time.Second

// serveConv answers one batch of stream 0x07 (conv_wire.go): it reads
// every request frame, acts on them (envelopes for this device committed
// together) and answers each in order.
func (c *convs) serveConv(ctx context.Context, s *transport.Stream) {
	p, ok := c.a.book.peerForKey(s.Conn().PeerKey())
	if !ok {
		s.Reset(errResetStream)
		return
	}
	var reqs []convFrame
	total := 0
	for {
		f, n, err := readConvFrame(s)
		if errors.Is(err, io.EOF) {
			break
		}
		total += n
		if err != nil || !isRequest(f.Type) || len(reqs) == maxConvFrames || total > maxConvBatch {
			c.a.log.Debug("conversation stream refused", "peer", p.DeviceID.Short(), "err", err, "frames", len(reqs))
			s.Reset(errResetStream)
			return
		}
		reqs = append(reqs, f)
	}
	answers := c.answer(p, reqs)
	for _, f := range answers {
		if err := writeConvFrame(s, f); err != nil {
			return
		}
	}
}

// answer acts on a batch from peer p and returns one answer per request.
func (c *convs) answer(p Peer, reqs []convFrame) []convFrame {
	out := make([]convFrame, len(reqs))
	var envs [][]byte
	var at []int
	for i, f := range reqs {
		switch f.Type {
		case convDeliver:
			envs, at = append(envs, f.Envelope), append(at, i)
		case convForward:
			if f.Device.Equal(c.a.dev.Cert.Device) {
				envs, at = append(envs, f.Envelope), append(at, i)
				continue
			}
			out[i] = c.takeForward(p, f)
		case convProbe:
			out[i] = convFrame{Type: convReach, Reach: c.reach(f.Device)}
		case convSync:
			out[i] = c.answerSync(p, conversation.ID(f.Conv))
		}
	}
	if len(envs) > 0 {
		acks, errs := c.book.ReceiveBatch(envs)
		for j, i := range at {
			var ack []byte
			var err error
			if j < len(acks) {
				ack = acks[j]
			}
			if j < len(errs) {
				err = errs[j]
			}
			out[i] = receiveAnswer(ack, err)
			if err != nil && !errors.Is(err, conversation.ErrHeld) {
				c.a.log.Debug("conversation envelope refused", "peer", p.DeviceID.Short(), "err", err)
			}
		}
	}
	return out
}

// receiveAnswer is the answer to an envelope the Book took (or not).
func receiveAnswer(ack []byte, err error) convFrame {
	switch {
	case ack != nil:
		// Also for a valid envelope refused for good (after the
		// decision): its ack drains the author's outbox.
		return convFrame{Type: convAck, Envelope: ack}
	case err == nil:
		return convFrame{Type: convAck}
	case errors.Is(err, conversation.ErrHeld):
		return convFrame{Type: convRefused, Code: convCodeHeld, Reason: "held until an earlier envelope arrives"}
	case errors.Is(err, conversation.ErrRefused):
		return convFrame{Type: convRefused, Code: convCodeRefused, Reason: err.Error()}
	}
	return convFrame{Type: convRefused, Code: convCodeFailed, Reason: "the envelope could not be stored"}
}

// takeForward queues an envelope for another device, if this device
// knows that device and the envelope verifies.
func (c *convs) takeForward(p Peer, f convFrame) convFrame {
	if _, ok := c.a.book.peerFor(f.Device); !ok {
		return convFrame{Type: convRefused, Code: convCodeUnknown, Reason: "this device does not know " + f.Device.Short()}
	}
	if _, err := conversation.Inspect(f.Envelope); err != nil {
		return convFrame{Type: convRefused, Code: convCodeBad, Reason: err.Error()}
	}
	env := append([]byte(nil), f.Envelope...)
	switch err := c.fwd.put(f.Device, p.DeviceID, env, c.a.cfg.Now()); {
	case errors.Is(err, errForwardQuota):
		return convFrame{Type: convRefused, Code: convCodeQuota, Reason: err.Error()}
	case err != nil:
		c.a.log.Warn("forward queue", "err", err)
		return convFrame{Type: convRefused, Code: convCodeFailed, Reason: "the envelope could not be stored"}
	}
	c.wake()
	return convFrame{Type: convQueued}
}

// reach says whether this device can deliver to device d.
func (c *convs) reach(d seed.DevicePublic) byte {
	if _, ok := c.a.book.peerFor(d); !ok || d.Equal(c.a.dev.Cert.Device) {
		return reachUnknown
	}
	if c.a.onlineSet()[d] {
		return reachOnline
	}
	return reachOffline
}

// answerSync hands an own device the envelopes of a conversation.
func (c *convs) answerSync(p Peer, id conversation.ID) convFrame {
	if p.Kind != roster.KindOwn {
		return convFrame{Type: convRefused, Code: convCodeDenied, Reason: "sync is for own devices"}
	}
	envs := c.envelopesOf(id)
	if len(envs) == 0 {
		return convFrame{Type: convRefused, Code: convCodeUnknown, Reason: "no such conversation here"}
	}
	var out [][]byte
	size := 1
	for _, e := range envs {
		if len(out) == maxConvSyncEnv || size+len(e)+10 > transport.MaxFrameSize {
			break // the rest comes through the authors' outboxes
		}
		out = append(out, e)
		size += len(e) + 10
	}
	return convFrame{Type: convEnvelopes, Envelopes: out}
}

// envelopesOf returns what this device can send of conversation id to an
// own device that lacks it.
func (c *convs) envelopesOf(id conversation.ID) [][]byte {
	if g, ok := c.book.Genesis(id); ok {
		return [][]byte{g}
	}
	return nil
}
