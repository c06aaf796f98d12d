package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// layer is raft's StreamLayer: Accept hands out the ProtoRaft streams the
// agent admitted, Dial opens one to a device. Raft's NetworkTransport
// outlives the raft instances that reset and Recover replace, so the
// layer is closed only by Close.
type layer struct {
	n  *Node
	l  net.Listener
	ch chan net.Conn

	once sync.Once
	done chan struct{}
	wg   sync.WaitGroup
}

var _ raft.StreamLayer = (*view)(nil)

func newLayer(n *Node, l net.Listener) *layer {
	ly := &layer{n: n, l: l, ch: make(chan net.Conn), done: make(chan struct{})}
	ly.wg.Add(1)
	go func() {
		defer ly.wg.Done()
		ly.pump()
	}()
	return ly
}

// pump moves accepted streams to Accept until the listener or the layer
// closes.
func (ly *layer) pump() {
	for {
		c, err := ly.l.Accept()
		if err != nil {
			return
		}
		select {
		case ly.ch <- c:
		case <-ly.done:
			c.Close()
			return
		}
	}
}

// Accept returns the next raft stream.
func (ly *layer) Accept() (net.Conn, error) {
	select {
	case c := <-ly.ch:
		return c, nil
	case <-ly.done:
		return nil, ErrClosed
	}
}

// Close is what raft's transport calls; the layer stays until close.
func (ly *layer) Close() error { return nil }

// view is the layer as one raft transport sees it. Raft closes its
// transport when it shuts down, and reset and Recover start a new one on
// the same layer: a closed view stops taking streams, the layer goes on.
type view struct {
	*layer
	once sync.Once
	done chan struct{}
}

func (ly *layer) view() *view { return &view{layer: ly, done: make(chan struct{})} }

func (v *view) Accept() (net.Conn, error) {
	select {
	case c := <-v.ch:
		return c, nil
	case <-v.layer.done:
		return nil, ErrClosed
	case <-v.done:
		return nil, ErrClosed
	}
}

func (v *view) Close() error {
	v.once.Do(func() { close(v.done) })
	return nil
}

// close stops Accept, closes the agent's listener and waits for pump.
func (ly *layer) close() {
	ly.once.Do(func() {
		close(ly.done)
		ly.l.Close()
		ly.wg.Wait()
	})
}

// Addr is the placeholder address of this device: its ID.
func (ly *layer) Addr() net.Addr { return placeholder(ly.n.cfg.ID) }

// Dial opens a raft stream to address, "ID@ADDR" or a bare ID.
func (ly *layer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	id, addr := splitAddress(string(address))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case <-ly.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	c, err := ly.n.cfg.Dial(ctx, id, addr, ProtoRaft)
	if err != nil {
		return nil, fmt.Errorf("cluster: dialing %s: %w", shortID(id), err)
	}
	return c, nil
}

// placeholder is a device ID as a net.Addr.
type placeholder string

func (p placeholder) Network() string { return "kith" }
func (p placeholder) String() string  { return string(p) }

// splitAddress splits "ID@ADDR"; a bare ID has no ADDR.
func splitAddress(s string) (id, addr string) {
	id, addr, _ = strings.Cut(s, "@")
	return id, addr
}

// addrProvider resolves a server ID to "ID@ADDR" with the device's current
// address, so that raft's configuration keeps the IDs alone.
type addrProvider struct{ n *Node }

var errUnresolved = errors.New("cluster: no address known for the device")

func (p addrProvider) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	if string(id) == p.n.cfg.ID {
		return raft.ServerAddress(id), nil
	}
	addr := p.n.cfg.Resolve(string(id))
	if addr == "" {
		return "", errUnresolved
	}
	return raft.ServerAddress(string(id) + "@" + addr), nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
