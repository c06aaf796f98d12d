package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/kith-project/kith/internal/transport"
)

// The forward protocol (ProtoForward, 0x06, own devices only): after the
// protocol byte, the opener writes one Request frame and the other end
// answers one Reply frame; a frame is transport's (a 4-byte big-endian
// length and that many bytes of JSON), at most MaxFrame bytes.
//
//	{"op":"apply","command":{…}}           apply a command (on the leader)
//	{"op":"hello","hello":{…}}             the join handshake (members.go)
//	{"op":"recover","servers":["ID",…]}    recover onto these servers
//	{"op":"ping"}                          is the device's cluster running
//
// A Reply is {"err":"…"} on failure, else {} with "yield" and "hello" for
// a hello.

// MaxFrame bounds one frame of the forward protocol.
const MaxFrame = MaxCommand + 4096

// Operations of the forward protocol.
const (
	OpApply   = "apply"
	OpHello   = "hello"
	OpRecover = "recover"
	OpPing    = "ping"
)

// Request is what the opener of a forward stream sends.
type Request struct {
	Op      string          `json:"op"`
	Command json.RawMessage `json:"command,omitempty"`
	Hello   *Hello          `json:"hello,omitempty"`
	Servers []string        `json:"servers,omitempty"`
}

// Reply answers a Request.
type Reply struct {
	Err   string `json:"err,omitempty"`
	Yield bool   `json:"yield,omitempty"`
	Hello *Hello `json:"hello,omitempty"`
}

// Hello is one side of the join handshake.
type Hello struct {
	ID string `json:"id"`
	// Single: the node's configuration holds itself alone, or nothing.
	Single    bool   `json:"single"`
	LastIndex uint64 `json:"last_index"`
}

// DecodeRequest parses and checks a Request frame.
func DecodeRequest(b []byte) (Request, error) {
	var r Request
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("cluster: decoding a request: %w", err)
	}
	switch r.Op {
	case OpApply:
		if _, err := DecodeCommand(r.Command); err != nil {
			return r, err
		}
	case OpHello:
		if r.Hello == nil || r.Hello.ID == "" {
			return r, errors.New("cluster: a hello without its state")
		}
	case OpPing:
	case OpRecover:
		if len(r.Servers) == 0 || len(r.Servers) > 16 {
			return r, errors.New("cluster: a recovery without 1..16 servers")
		}
	default:
		return r, fmt.Errorf("cluster: unknown operation %q", clip(r.Op))
	}
	return r, nil
}

func clip(s string) string {
	if len(s) > 32 {
		s = s[:32]
	}
	return fmt.Sprintf("%q", s)
}

// ask sends req to device id on a forward stream and returns the reply.
func (n *Node) ask(ctx context.Context, id string, req Request) (Reply, error) {
	var rep Reply
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := n.cfg.Dial(ctx, id, "", ProtoForward)
	if err != nil {
		return rep, err
	}
	defer s.Close()
	dl, _ := ctx.Deadline()
	s.SetDeadline(dl)
	b, err := json.Marshal(req)
	if err != nil {
		return rep, err
	}
	if err := transport.WriteFrame(s, b); err != nil {
		return rep, fmt.Errorf("cluster: sending %s: %w", req.Op, err)
	}
	rb, err := transport.ReadFrame(s, MaxFrame)
	if err != nil {
		return rep, fmt.Errorf("cluster: reading the answer to %s: %w", req.Op, err)
	}
	if err := json.Unmarshal(rb, &rep); err != nil {
		return rep, fmt.Errorf("cluster: decoding the answer to %s: %w", req.Op, err)
	}
	if rep.Err != "" {
		return rep, fmt.Errorf("cluster: %s refused: %s", req.Op, clip(rep.Err))
	}
	return rep, nil
}

// ServeForward serves one forward stream an own device opened, whose
// protocol byte was read. from is the opener's device ID, authenticated
// by the transport.
func (n *Node) ServeForward(ctx context.Context, s net.Conn, from string) {
	b, err := transport.ReadFrame(s, MaxFrame)
	if err != nil {
		return
	}
	var rep Reply
	req, err := DecodeRequest(b)
	if err == nil {
		rep, err = n.handle(ctx, req, from)
	}
	if err != nil {
		rep = Reply{Err: err.Error()}
	}
	out, _ := json.Marshal(rep)
	transport.WriteFrame(s, out)
	if cw, ok := s.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	io.Copy(io.Discard, io.LimitReader(s, 1))
}

func (n *Node) handle(ctx context.Context, req Request, from string) (Reply, error) {
	switch req.Op {
	case OpApply:
		r := n.raft()
		if r == nil {
			return Reply{}, ErrNoLeader
		}
		if err := r.Apply(req.Command, 10*time.Second).Error(); err != nil {
			return Reply{}, fmt.Errorf("not applied: %w", err)
		}
		return Reply{}, nil
	case OpHello:
		if req.Hello.ID != from {
			return Reply{}, errors.New("a hello for another device")
		}
		return n.answerHello(*req.Hello), nil
	case OpPing:
		return Reply{}, nil
	case OpRecover:
		// Recover refuses while a leader is known; an own device asks
		// only after the user revoked the lost devices with the phrase.
		if err := n.Recover(req.Servers); err != nil {
			return Reply{}, err
		}
		return Reply{}, nil
	}
	return Reply{}, errors.New("unknown operation")
}

// AskRecover asks own device id to recover onto servers, as this device
// is about to.
func (n *Node) AskRecover(ctx context.Context, id string, servers []string) error {
	_, err := n.ask(ctx, id, Request{Op: OpRecover, Servers: servers})
	return err
}

// Ping reports whether own device id's cluster answers within timeout.
func (n *Node) Ping(ctx context.Context, id string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := n.ask(ctx, id, Request{Op: OpPing})
	return err == nil
}
