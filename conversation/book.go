package conversation

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/kith-project/kith/consensus"
	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// ClockTolerance is how far in this device's future an outcome's
// evaluation time may be.
const ClockTolerance = 2 * time.Minute

// Book is a device's conversations, kept in its store and mirrored in
// memory. Its methods are safe for concurrent use: one lock serializes
// them, and every change is one bbolt transaction.
type Book struct {
	cfg   Config
	now   func() time.Time
	log   *slog.Logger
	ident *age.X25519Identity
	self  seed.DevicePublic
	user  seed.UserPublic

	mu          sync.Mutex
	closed      bool                            // guarded by mu
	convs       map[ID]*conv                    // guarded by mu
	outbox      map[seed.DevicePublic]*outQueue // guarded by mu
	outSeq      uint64                          // guarded by mu: the last outbox sequence number used
	held        map[ID][]*heldEnv               // guarded by mu: envelopes waiting for an earlier one
	nheld       int                             // guarded by mu
	heldBytes   int                             // guarded by mu
	heldBy      map[seed.UserPublic]int         // guarded by mu: held envelopes per author user
	heldAge     uint64                          // guarded by mu: the last heldEnv.age used
	heldApplies int                             // guarded by mu: held envelopes tried again (for tests)
	nstrangers  int                             // guarded by mu: held envelopes with stranger set
	dirty       bool                            // guarded by mu: the current transaction wrote something
	forgotten   map[ID]bool                     // guarded by mu: archived conversations, acknowledged and not stored (export.go)
}

// conv is one conversation in memory.
type conv struct {
	id       ID
	g        genesisPayload
	creator  seed.UserPublic
	rule     *consensus.Rule // nil: never decides
	key      []byte          // the per-conversation at-rest key
	rec      convRec         // as stored, written once
	state    convState       // as stored, rewritten as the conversation goes
	msgs     map[MessageID]*msg
	order    []*msg // accepted messages (not late, not outcomes), ascending (Lamport, ID)
	heads    map[seed.DevicePublic]*msg
	lamport  uint64 // the highest Lamport time stored
	outcomes []*msg // valid outcomes
	winner   *msg   // the lowest (Lamport, ID) of outcomes; nil while open
	tally    *consensus.Tally
	tallyN   int // messages of order added to tally
	// ruleErr is why the rule's last evaluation failed ("" when it
	// evaluated): a rule can fail at run time (an index past the end of
	// messages, int() of a body that is no number), and then it cannot
	// decide until the messages change.
	ruleErr string
}

// msg is a stored message or outcome.
type msg struct {
	id      MessageID
	device  seed.DevicePublic
	user    seed.UserPublic
	seq     uint64
	prev    MessageID
	lamport uint64
	outcome *outcomePayload // nil for a message
	m       messagePayload
	late    bool // stored after the decision: not counted unless an outcome names it
}

// Records in the store.
// convRec is conversations/<id>: written once (the genesis may be large).
type convRec struct {
	Genesis []byte `json:"genesis"` // the genesis envelope
	Key     []byte `json:"key"`     // the per-conversation key, sealed with Self.AtRest
	Sealed  []byte `json:"sealed"`  // the genesis payload, sealed with the key
}

// convState is conversations/<id>/state: small, rewritten often.
type convState struct {
	GenesisTo []seed.DevicePublic `json:"genesis_to"` // devices the genesis was queued for
	Updated   time.Time           `json:"updated"`
}

const stateSuffix = "/state"

func stateKey(id ID) string { return id.String() + stateSuffix }

type msgRec struct {
	Env    []byte `json:"env"`    // the envelope as it travelled (its payload is age ciphertext)
	Sealed []byte `json:"sealed"` // the payload's plaintext, sealed with the conversation key
	Late   bool   `json:"late,omitempty"`
}

type outRec struct {
	Conv   ID              `json:"conv"`
	ID     MessageID       `json:"id"`
	ToUser seed.UserPublic `json:"to_user"`
}

// outQueue is one device's outbox, ascending by seq.
type outQueue struct {
	user  seed.UserPublic
	items []outItem
}

type outItem struct {
	seq  uint64
	conv ID
	id   MessageID
}

func (k msg) less(o *msg) int {
	return cmp.Or(cmp.Compare(k.lamport, o.lamport), bytes.Compare(k.id[:], o.id[:]))
}

func convKey(id ID) string { return id.String() }

func msgKey(c ID, id MessageID) string { return c.String() + "/" + id.String() }

func outKey(to seed.DevicePublic, seq uint64) string { return fmt.Sprintf("%s/%016x", to.ID(), seq) }

// Open loads the device's conversations from cfg.Store.
func Open(cfg Config) (*Book, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("conversation: no store")
	}
	if err := cfg.Self.Cert.Verify(); err != nil {
		return nil, fmt.Errorf("conversation: this device's certificate: %w", err)
	}
	if !cfg.Self.Cert.Device.Equal(cfg.Self.Key.Public()) || !cfg.Self.Cert.Archive.Equal(cfg.Self.Archive.Recipient()) {
		return nil, fmt.Errorf("conversation: the certificate is not this device's")
	}
	ident, err := cfg.Self.Archive.AgeIdentity()
	if err != nil {
		return nil, fmt.Errorf("conversation: %w", err)
	}
	b := &Book{cfg: cfg, now: cfg.Now, log: cfg.Log, ident: ident, self: cfg.Self.Cert.Device, user: cfg.Self.Cert.User}
	if b.now == nil {
		b.now = time.Now
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	if err := b.load(); err != nil {
		return nil, err
	}
	return b, nil
}

// Close lets go of the Book; the Store stays open (its owner closes it).
func (b *Book) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

// load reads everything from the store into memory.
func (b *Book) load() error {
	b.convs = map[ID]*conv{}
	b.outbox = map[seed.DevicePublic]*outQueue{}
	if b.held == nil {
		b.held = map[ID][]*heldEnv{}
		b.heldBy = map[seed.UserPublic]int{}
	}
	return b.cfg.Store.View(func(tx *store.Tx) error {
		if err := tx.List(store.BucketConversations, func(key string, raw []byte) error {
			if idHex, ok := strings.CutSuffix(key, stateSuffix); ok {
				return b.loadState(idHex, raw) // listed after its conversation
			}
			c, err := b.loadConv(key, raw)
			if err != nil {
				return err
			}
			b.convs[c.id] = c
			return nil
		}); err != nil {
			return err
		}
		if err := tx.List(store.BucketConvMessages, func(key string, raw []byte) error {
			return b.loadMsg(key, raw)
		}); err != nil {
			return err
		}
		for _, c := range b.convs {
			b.settle(c)
			b.checkRule(c)
		}
		return tx.List(store.BucketConvOutbox, func(key string, raw []byte) error {
			return b.loadOut(key, raw)
		})
	})
}

func (b *Book) loadConv(key string, raw []byte) (*conv, error) {
	var rec convRec
	if err := jsonUnmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("conversation: reading %s: %w", key, err)
	}
	e, err := decodeEnvelope(rec.Genesis, false)
	if err != nil {
		return nil, fmt.Errorf("conversation: reading %s: %w", key, err)
	}
	ck, err := openAtRest(b.cfg.Self.AtRest[:], "key/"+e.conv.String(), rec.Key)
	if err != nil {
		return nil, err
	}
	plain, err := openAtRest(ck, "genesis/"+e.conv.String(), rec.Sealed)
	if err != nil {
		return nil, err
	}
	g, err := parseGenesis(plain)
	if err != nil {
		return nil, fmt.Errorf("conversation: reading %s: %w", key, err)
	}
	c := newConv(e, g, ck, rec)
	if g.rule != "" {
		if c.rule, err = consensus.Compile(g.rule); err != nil {
			b.log.Warn("conversation: a stored rule does not compile", "conv", e.conv, "err", err)
		}
	}
	return c, nil
}

func (b *Book) loadState(idHex string, raw []byte) error {
	id, err := ParseID(idHex)
	if err != nil {
		return fmt.Errorf("conversation: a bad state key %q: %w", idHex, err)
	}
	c := b.convs[id]
	if c == nil {
		return fmt.Errorf("conversation: the state of a missing conversation %s", idHex)
	}
	if err := jsonUnmarshal(raw, &c.state); err != nil {
		return fmt.Errorf("conversation: reading the state of %s: %w", idHex, err)
	}
	return nil
}

func newConv(e *envelope, g genesisPayload, key []byte, rec convRec) *conv {
	return &conv{
		id: e.conv, g: g, creator: e.cert.User, key: key, rec: rec,
		msgs: map[MessageID]*msg{}, heads: map[seed.DevicePublic]*msg{},
	}
}

func (b *Book) loadMsg(key string, raw []byte) error {
	var rec msgRec
	if err := jsonUnmarshal(raw, &rec); err != nil {
		return fmt.Errorf("conversation: reading message %s: %w", key, err)
	}
	e, err := decodeEnvelope(rec.Env, false)
	if err != nil {
		return fmt.Errorf("conversation: reading message %s: %w", key, err)
	}
	c := b.convs[e.conv]
	if c == nil {
		return fmt.Errorf("conversation: message %s of a missing conversation", key)
	}
	plain, err := openAtRest(c.key, "msg/"+MessageID(e.id).String(), rec.Sealed)
	if err != nil {
		return err
	}
	m, err := msgOf(e, plain)
	if err != nil {
		return fmt.Errorf("conversation: reading message %s: %w", key, err)
	}
	m.late = rec.Late
	c.add(m)
	return nil
}

func (b *Book) loadOut(key string, raw []byte) error {
	var rec outRec
	if err := jsonUnmarshal(raw, &rec); err != nil {
		return fmt.Errorf("conversation: reading outbox %s: %w", key, err)
	}
	dev, seqHex, ok := strings.Cut(key, "/")
	to, err := seed.ParseDevicePublic(dev)
	var seq uint64
	if _, serr := fmt.Sscanf(seqHex, "%016x", &seq); !ok || err != nil || serr != nil {
		return fmt.Errorf("conversation: a bad outbox key %q", key)
	}
	q := b.queue(to, rec.ToUser)
	q.items = append(q.items, outItem{seq: seq, conv: rec.Conv, id: rec.ID})
	b.outSeq = max(b.outSeq, seq)
	return nil
}

func (b *Book) queue(to seed.DevicePublic, user seed.UserPublic) *outQueue {
	q := b.outbox[to]
	if q == nil {
		q = &outQueue{user: user}
		b.outbox[to] = q
	}
	return q
}

// msgOf makes a msg of an envelope and its payload's plaintext.
func msgOf(e *envelope, plain []byte) (*msg, error) {
	m := &msg{id: e.id, device: e.cert.Device, user: e.cert.User, seq: e.seq, prev: e.prev, lamport: e.lamport}
	switch e.kind {
	case kindMessage:
		p, err := parseMessage(plain)
		if err != nil {
			return nil, err
		}
		m.m = p
	case kindOutcome:
		p, err := parseOutcome(plain)
		if err != nil {
			return nil, err
		}
		m.outcome = &p
	default:
		return nil, refusef("a %s is not a message", kindNames[e.kind])
	}
	return m, nil
}

// add puts a verified message or outcome into the conversation's memory.
// Outcomes are added to c.outcomes by the caller once valid (settle does it
// on load).
func (c *conv) add(m *msg) {
	c.msgs[m.id] = m
	if h := c.heads[m.device]; h == nil || m.seq > h.seq {
		c.heads[m.device] = m
	}
	c.lamport = max(c.lamport, m.lamport)
	if m.outcome != nil {
		return
	}
	if m.late {
		return
	}
	i, _ := slices.BinarySearchFunc(c.order, m, func(a, t *msg) int { return a.less(t) })
	if i < len(c.order) {
		c.tally, c.tallyN = nil, 0 // out of order: rebuilt on the next look
	}
	c.order = slices.Insert(c.order, i, m)
}

// settle recomputes the valid outcomes and the winner after load: every
// stored outcome was valid when it was stored.
func (b *Book) settle(c *conv) {
	c.outcomes = c.outcomes[:0]
	for _, m := range c.msgs {
		if m.outcome != nil {
			c.addOutcome(m)
		}
	}
}

func (c *conv) addOutcome(m *msg) {
	c.outcomes = append(c.outcomes, m)
	if c.winner == nil || m.less(c.winner) < 0 {
		c.winner = m
	}
}

// members returns the members' user IDs in hex, as rules see them.
func (c *conv) memberIDs() []string {
	out := make([]string, len(c.g.members))
	for i, m := range c.g.members {
		out[i] = m.ID()
	}
	return out
}

// currentTally returns the tally of every accepted message.
func (c *conv) currentTally() *consensus.Tally {
	if c.tally == nil {
		c.tally, c.tallyN = consensus.NewTally(c.memberIDs()), 0
	}
	for ; c.tallyN < len(c.order); c.tallyN++ {
		c.tally.Add(ruleMessage(c.order[c.tallyN]))
	}
	return c.tally
}

func ruleMessage(m *msg) consensus.Message {
	return consensus.Message{By: m.user.ID(), Kind: m.m.kind, Body: m.m.body, At: m.m.at}
}

func (c *conv) isMember(u seed.UserPublic) bool {
	for _, m := range c.g.members {
		if m.Equal(u) {
			return true
		}
	}
	return false
}

// revoked reports whether the device of cert is revoked, in the directory
// or in a roster the genesis carries.
func (b *Book) revoked(c *conv, cert seed.DeviceCert) bool {
	var rosters []roster.Signed
	if c != nil {
		rosters = c.g.rosters
	}
	return b.revokedIn(rosters, cert)
}

// recipients lists the member devices an envelope of c is sealed to: the
// directory's and the genesis rosters' certificates of every member, not
// revoked, this device included.
func (b *Book) recipients(c *conv) ([]seed.DeviceCert, error) {
	return b.recipientsOf(c.g.members, c.g.rosters)
}

func (b *Book) recipientsOf(members []seed.UserPublic, rosters []roster.Signed) ([]seed.DeviceCert, error) {
	seen := map[seed.DevicePublic]bool{}
	var out []seed.DeviceCert
	addCert := func(u seed.UserPublic, cert seed.DeviceCert) {
		if !cert.User.Equal(u) || seen[cert.Device] || b.revokedIn(rosters, cert) {
			return
		}
		seen[cert.Device] = true
		out = append(out, cert)
	}
	addCert(b.user, b.cfg.Self.Cert)
	for _, u := range members {
		if b.cfg.Dir != nil {
			for _, cert := range b.cfg.Dir.Certs(u) {
				addCert(u, cert)
			}
		}
		for _, r := range rosters {
			if r.User.Equal(u) {
				for _, cert := range r.Certs {
					addCert(u, cert)
				}
			}
		}
	}
	if len(out) > MaxRecipients {
		return nil, fmt.Errorf("conversation: %d member devices, more than %d", len(out), MaxRecipients)
	}
	return out, nil
}

// revokedIn reports whether the device of cert is revoked, in the
// directory or in one of rosters. A roster's revocation counts only for a
// device of the roster's own user: a roster proves only that its user
// signed it, and one member's roster must not revoke another's device.
func (b *Book) revokedIn(rosters []roster.Signed, cert seed.DeviceCert) bool {
	if b.cfg.Dir != nil && b.cfg.Dir.Revoked(cert.Device) {
		return true
	}
	for _, r := range rosters {
		if !r.User.Equal(cert.User) {
			continue
		}
		if _, ok := r.Revoked(cert.Device); ok {
			return true
		}
	}
	return false
}

func newKey() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	return k
}

// openByStrangers counts the conversations held whose creators are
// neither this device's user nor a friend (knownUser), as the Directory
// says now. Decided ones count too: a decided conversation still takes
// late messages (up to MaxMessages) until it is archived and forgotten,
// and a rule of "true" decides one at once.
func (b *Book) openByStrangers() int {
	n := 0
	known := map[seed.UserPublic]bool{}
	for _, c := range b.convs {
		k, ok := known[c.creator]
		if !ok {
			k = b.knownUser(c.creator)
			known[c.creator] = k
		}
		if !k {
			n++
		}
	}
	return n
}

// openBy counts the conversations held that user created, decided or not
// (see openByStrangers).
func (b *Book) openBy(user seed.UserPublic) int {
	n := 0
	for _, c := range b.convs {
		if c.creator.Equal(user) {
			n++
		}
	}
	return n
}
