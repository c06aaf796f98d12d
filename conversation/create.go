package conversation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/kith-project/kith/consensus"
	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

func jsonUnmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }

// Create makes a conversation: it signs its genesis, stores it and queues
// it for every member device. A bad pattern, topic, member list or rule
// (wrapping *consensus.Error) is bad input (IsBadInput).
func (b *Book) Create(nc NewConversation) (ID, error) {
	if _, ok := patterns[nc.Pattern]; !ok {
		if _, err := ParsePattern(string(nc.Pattern)); err != nil {
			return ID{}, err
		}
	}
	if err := checkText("topic", nc.Topic, MaxTopicBytes); err != nil {
		return ID{}, err
	}
	if nc.Pattern == Chat && nc.Rule != "" {
		return ID{}, badf("a chat takes no rule")
	}
	if len(nc.Rule) > MaxRuleBytes {
		return ID{}, badf("the rule is %d bytes; at most %d", len(nc.Rule), MaxRuleBytes)
	}
	if nc.Rule != "" {
		if _, err := consensus.Compile(nc.Rule); err != nil {
			return ID{}, &badInput{fmt.Errorf("conversation: the rule is refused: %w", err)}
		}
	}
	members := append([]seed.UserPublic{b.user}, nc.Members...)
	slices.SortFunc(members, func(x, y seed.UserPublic) int { return bytes.Compare(x[:], y[:]) })
	members = slices.Compact(members)
	if len(members) < 2 {
		return ID{}, badf("a conversation needs at least one other member")
	}
	if len(members) > MaxMembers {
		return ID{}, badf("%d members; at most %d", len(members), MaxMembers)
	}
	rosters := slices.Clone(nc.Rosters)
	slices.SortFunc(rosters, func(x, y roster.Signed) int { return bytes.Compare(x.User[:], y.User[:]) })
	rosters = slices.CompactFunc(rosters, func(x, y roster.Signed) bool { return x.User == y.User })
	for _, r := range rosters {
		if !slices.Contains(members, r.User) {
			return ID{}, badf("the roster of %s, who is not a member", r.User.Short())
		}
		if _, err := roster.ParseSigned(r.Marshal()); err != nil {
			return ID{}, fmt.Errorf("conversation: the roster of %s: %w", r.User.Short(), err)
		}
	}
	g := genesisPayload{
		created: b.now().UTC().Truncate(1e6), pattern: nc.Pattern, rule: nc.Rule, topic: nc.Topic,
		members: members, rosters: rosters,
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ID{}, ErrClosed
	}
	var id ID
	err := b.update(func(tx *store.Tx) error {
		certs, err := b.recipientsOf(members, rosters)
		if err != nil {
			return err
		}
		plain := g.marshal()
		sealed, err := sealTo(archives(certs), plain)
		if err != nil {
			return err
		}
		raw, eid := sealEnvelope(b.cfg.Self.Key, b.cfg.Self.Cert, kindGenesis, ID{}, 0, MessageID{}, 0, sealed)
		e, err := parseEnvelope(raw)
		if err != nil {
			return fmt.Errorf("conversation: our own genesis: %w", err)
		}
		id = eid
		c, err := b.storeGenesis(tx, e, g, plain)
		if err != nil {
			return err
		}
		return b.enqueue(tx, c, MessageID(id), certs)
	})
	b.mu.Unlock()
	if err != nil {
		return ID{}, err
	}
	b.notify(map[ID]bool{id: true})
	return id, nil
}

func archives(certs []seed.DeviceCert) []seed.ArchiveRecipient {
	out := make([]seed.ArchiveRecipient, len(certs))
	for i, c := range certs {
		out[i] = c.Archive
	}
	return out
}

// update runs fn in one bbolt transaction; if it fails, the memory is
// reloaded from the store, so it never differs from what was committed.
// b.mu is held.
func (b *Book) update(fn func(tx *store.Tx) error) error {
	b.dirty = false
	err := b.cfg.Store.Update(func(tx *store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if !b.dirty {
			return errNoWrite // roll back: no commit, no fsync
		}
		return nil
	})
	if errors.Is(err, errNoWrite) {
		return nil
	}
	if err != nil {
		if lerr := b.load(); lerr != nil {
			b.log.Error("conversation: reloading after a failed transaction", "err", lerr)
		}
	}
	return err
}

// errNoWrite ends a transaction that wrote nothing.
var errNoWrite = errors.New("conversation: nothing to write")

// storeGenesis stores a verified genesis and makes its conversation.
func (b *Book) storeGenesis(tx *store.Tx, e *envelope, g genesisPayload, plain []byte) (*conv, error) {
	key := newKey()
	rec := convRec{
		Genesis: e.raw,
		Key:     sealAtRest(b.cfg.Self.AtRest[:], "key/"+e.conv.String(), key),
		Sealed:  sealAtRest(key, "genesis/"+e.conv.String(), plain),
		Updated: b.now().UTC(),
	}
	b.dirty = true
	if err := tx.Put(store.BucketConversations, convKey(e.conv), rec); err != nil {
		return nil, err
	}
	c := newConv(e, g, key, rec)
	if g.rule != "" {
		r, err := consensus.Compile(g.rule)
		if err != nil {
			b.log.Warn("conversation: a rule that does not compile here: the conversation never decides on this device", "conv", e.conv, "err", err)
		} else {
			c.rule = r
		}
	}
	b.convs[c.id] = c
	return c, nil
}

// storeMsg stores a verified message or outcome.
func (b *Book) storeMsg(tx *store.Tx, c *conv, e *envelope, m *msg, plain []byte) error {
	b.dirty = true
	if err := tx.Put(store.BucketConvMessages, msgKey(c.id, m.id), msgRec{
		Env: e.raw, Sealed: sealAtRest(c.key, "msg/"+m.id.String(), plain), Late: m.late,
	}); err != nil {
		return err
	}
	c.rec.Updated = b.now().UTC()
	if err := tx.Put(store.BucketConversations, convKey(c.id), c.rec); err != nil {
		return err
	}
	c.add(m)
	return nil
}

// enqueue puts envelope id of c in the outbox of every device in certs but
// this one, after the genesis for a device that was never sent it.
func (b *Book) enqueue(tx *store.Tx, c *conv, id MessageID, certs []seed.DeviceCert) error {
	changed := false
	for _, cert := range certs {
		if cert.Device == b.self {
			continue
		}
		if !slices.Contains(c.rec.GenesisTo, cert.Device) {
			if err := b.put(tx, cert, c.id, MessageID(c.id)); err != nil {
				return err
			}
			c.rec.GenesisTo = append(c.rec.GenesisTo, cert.Device)
			changed = true
		}
		if id != MessageID(c.id) {
			if err := b.put(tx, cert, c.id, id); err != nil {
				return err
			}
		}
	}
	if changed {
		return tx.Put(store.BucketConversations, convKey(c.id), c.rec)
	}
	return nil
}

func (b *Book) put(tx *store.Tx, cert seed.DeviceCert, cid ID, id MessageID) error {
	b.dirty = true
	b.outSeq++
	if err := tx.Put(store.BucketConvOutbox, outKey(cert.Device, b.outSeq), outRec{Conv: cid, ID: id, ToUser: cert.User}); err != nil {
		return err
	}
	q := b.queue(cert.Device, cert.User)
	q.items = append(q.items, outItem{seq: b.outSeq, conv: cid, id: id})
	return nil
}

// Post signs, stores and queues a message of kind with body. A kind or
// choice the pattern refuses, or a decided conversation, is bad input.
func (b *Book) Post(id ID, kind, body string) (MessageID, error) {
	if err := checkText("body", body, MaxBodyBytes); err != nil {
		return MessageID{}, err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return MessageID{}, ErrClosed
	}
	c := b.convs[id]
	if c == nil {
		b.mu.Unlock()
		return MessageID{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err := c.g.pattern.allows(kind, body, c.creator.Equal(b.user)); err != nil {
		b.mu.Unlock()
		return MessageID{}, err
	}
	if c.winner != nil {
		b.mu.Unlock()
		return MessageID{}, badf("the conversation is decided (%s); it takes no more messages", sanitize(c.winner.outcome.result, 32))
	}
	if len(c.msgs) >= MaxMessages {
		b.mu.Unlock()
		return MessageID{}, badf("the conversation is full (%d messages)", MaxMessages)
	}
	var mid MessageID
	err := b.update(func(tx *store.Tx) error {
		p := messagePayload{at: b.now().UTC().Truncate(1e6), kind: kind, body: body}
		m, err := b.publish(tx, c, kindMessage, p.marshal())
		if err != nil {
			return err
		}
		mid = m.id
		return b.decide(tx, c)
	})
	b.mu.Unlock()
	if err != nil {
		return MessageID{}, err
	}
	b.notify(map[ID]bool{id: true})
	return mid, nil
}

// publish seals, signs, stores and queues this device's next envelope of
// c: a message or an outcome.
func (b *Book) publish(tx *store.Tx, c *conv, kind byte, plain []byte) (*msg, error) {
	certs, err := b.recipients(c)
	if err != nil {
		return nil, err
	}
	sealed, err := sealTo(archives(certs), plain)
	if err != nil {
		return nil, err
	}
	seq, prev := uint64(1), MessageID{}
	if h := c.heads[b.self]; h != nil {
		seq, prev = h.seq+1, h.id
	}
	raw, _ := sealEnvelope(b.cfg.Self.Key, b.cfg.Self.Cert, kind, c.id, seq, prev, c.lamport+1, sealed)
	e, err := parseEnvelope(raw)
	if err != nil {
		return nil, fmt.Errorf("conversation: our own envelope: %w", err)
	}
	m, err := msgOf(e, plain)
	if err != nil {
		return nil, err
	}
	if err := b.storeMsg(tx, c, e, m, plain); err != nil {
		return nil, err
	}
	if m.outcome != nil {
		c.addOutcome(m)
	}
	return m, b.enqueue(tx, c, m.id, certs)
}

// Vote posts choice with the pattern's vote kind.
func (b *Book) Vote(id ID, choice string) (MessageID, error) {
	b.mu.Lock()
	c := b.convs[id]
	b.mu.Unlock()
	if c == nil {
		return MessageID{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	k := c.g.pattern.VoteKind()
	if k == "" {
		return MessageID{}, badf("a %s has no votes", c.g.pattern)
	}
	return b.Post(id, k, choice)
}

// notify calls OnChange for each conversation, outside the lock.
func (b *Book) notify(ids map[ID]bool) {
	if b.cfg.OnChange == nil {
		return
	}
	for id := range ids {
		b.cfg.OnChange(id)
	}
}
