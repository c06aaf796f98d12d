package agent

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/kith-project/kith/conversation"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// Conversations (package conversation) live in the agent's store; the
// agent opens the device's Book in New and closes it when Run returns or
// on Close, drives its outbox over stream 0x07 (conv_deliver.go), keeps a
// store-and-forward queue for friends (conv_forward.go), tells its own
// devices of new conversations through the own cluster (cluster command
// conv.index, cluster_state.go), and serves "kith conv" (conv_control.go).

// atRestInfo is the HKDF info of the key that seals conversations at rest.
const atRestInfo = "kith/v1/conversation-at-rest"

// atRestKey derives the key sealing conversations in the store from the
// device key: kept with the device's other keys (sealed by the lock
// passphrase when one is set), never stored itself.
func atRestKey(k seed.DeviceKey) ([32]byte, error) {
	var out [32]byte
	priv := k.Bytes()
	if priv == nil {
		return out, fmt.Errorf("no device key")
	}
	b, err := hkdf.Key(sha256.New, priv, nil, atRestInfo, 32)
	if err != nil {
		return out, err
	}
	copy(out[:], b)
	clear(b)
	clear(priv)
	return out, nil
}

// directory is conversation.Directory over the agent's roster: this
// user's devices and friends' devices as their signed rosters list them.
// Members who are not friends are known from the genesis rosters, which
// the Book consults itself. The Book asks it inside its store
// transactions, so it reads the roster without the address book's lock:
// a roster change holds that lock while it waits for the store.
type directory struct{ a *Agent }

func (d directory) Certs(user seed.UserPublic) []seed.DeviceCert {
	r := d.a.book.rosterPublished()
	var local []byte
	if user.Equal(d.a.dev.Cert.User) {
		local = d.a.dev.Identity.Cert
	} else if f, ok := r.Friend(user); !ok || f.Status != roster.StatusFriend {
		return nil
	}
	s, err := r.SignedOf(user, local)
	if err != nil {
		return nil
	}
	out := make([]seed.DeviceCert, 0, len(s.Certs))
	for _, c := range s.Certs {
		if !r.Revoked(c.Device) {
			out = append(out, c)
		}
	}
	return out
}

func (d directory) Revoked(dev seed.DevicePublic) bool {
	return d.a.book.rosterPublished().Revoked(dev)
}

// convs is the agent's conversation side.
type convs struct {
	// Constant after newConvs.
	a    *Agent
	book *conversation.Book
	fwd  *forwardQueue
	kick chan struct{} // wakes the delivery service; buffered, one
	// stopping is closed when the conversation service stops: followers
	// of the control API end then, not when the HTTP server gives up
	// waiting for them.
	stopping chan struct{}

	mu        sync.Mutex
	followers map[conversation.ID]map[chan struct{}]struct{} // guarded by mu
	syncs     map[conversation.ID]seed.DevicePublic          // guarded by mu: conversations to fetch, from which own device
	closed    bool                                           // guarded by mu
}

// newConvs opens the Book and the forward queue.
func newConvs(a *Agent) (*convs, error) {
	c := &convs{a: a, kick: make(chan struct{}, 1), stopping: make(chan struct{}),
		followers: map[conversation.ID]map[chan struct{}]struct{}{},
		syncs:     map[conversation.ID]seed.DevicePublic{}}
	key, err := atRestKey(a.dev.Device)
	if err != nil {
		return nil, fmt.Errorf("deriving the conversations' at-rest key: %w", err)
	}
	if c.fwd, err = openForwardQueue(a.st, a.cfg.Now()); err != nil {
		return nil, err
	}
	c.book, err = conversation.Open(conversation.Config{
		Store: a.st,
		Self: conversation.Self{
			Key: a.dev.Device, Cert: a.dev.Cert, Archive: a.dev.Archive, AtRest: key,
		},
		Dir:      directory{a},
		Now:      a.cfg.Now,
		Log:      a.log.With("service", "conversations"),
		OnChange: c.changed,
	})
	clear(key[:])
	if err != nil {
		return nil, fmt.Errorf("opening the conversations: %w", err)
	}
	return c, nil
}

// close closes the Book; idempotent.
func (c *convs) close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	return c.book.Close()
}

// wake asks the delivery service for a pass.
func (c *convs) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// changed is the Book's OnChange: it wakes delivery and the followers of
// conversation id.
func (c *convs) changed(id conversation.ID) {
	c.wake()
	c.a.webConvChanged()
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch := range c.followers[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// follow returns a channel that receives a token after every change of
// conversation id, until cancel.
func (c *convs) follow(id conversation.ID) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	if c.followers[id] == nil {
		c.followers[id] = map[chan struct{}]struct{}{}
	}
	c.followers[id][ch] = struct{}{}
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.followers[id], ch)
		if len(c.followers[id]) == 0 {
			delete(c.followers, id)
		}
	}
}

// wantSync records that conversation id, which an own device has, is
// missing here; the delivery service fetches it.
func (c *convs) wantSync(id conversation.ID, from seed.DevicePublic) {
	if _, err := c.book.Show(id); err == nil {
		return
	}
	c.mu.Lock()
	if len(c.syncs) < 1024 {
		c.syncs[id] = from
	}
	c.mu.Unlock()
	c.wake()
}

// takeSyncs hands out the conversations to fetch.
func (c *convs) takeSyncs() map[conversation.ID]seed.DevicePublic {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.syncs) == 0 {
		return nil
	}
	out := c.syncs
	c.syncs = map[conversation.ID]seed.DevicePublic{}
	return out
}

// convTick is how often the Book re-evaluates rules that read elapsed.
const convTick = 5 * time.Second
