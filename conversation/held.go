package conversation

import (
	"slices"

	"github.com/kith-project/kith/seed"
)

// # Held envelopes
//
// An envelope that must wait (for its conversation's genesis, an earlier
// envelope of its chain, the messages an outcome names) is kept in memory,
// bounded: MaxHeld envelopes and MaxHeldBytes in all, MaxHeldPerConv per
// conversation, MaxHeldPerUser per author user. When a bound is reached the
// oldest envelope of the author user holding the most (in all, or in the
// conversation) goes first, so one flooding author evicts its own
// envelopes before anybody else's. Anybody can sign an envelope of a
// made-up conversation, and mint users at will: an envelope of a
// conversation this device does not know, from a stranger (neither this
// user nor a user the Directory has certificates of), is kept among at most
// MaxHeldStrangers such, the oldest evicted first, so strangers evict only
// strangers. An evicted envelope is not acknowledged: its sender sends it
// again.

// MaxHeldPerUser is how many held envelopes one author user may have, in
// all conversations.
const MaxHeldPerUser = MaxHeldPerConv

// MaxHeldStrangers is how many held envelopes of unknown conversations by
// strangers are kept, in all.
const MaxHeldStrangers = 64

type heldEnv struct {
	id       [32]byte
	raw      []byte
	user     seed.UserPublic
	age      uint64 // order of arrival: lower is older
	stranger bool   // of an unknown conversation, by a stranger
}

// knownUser says whether u is this device's user or a friend.
func (b *Book) knownUser(u seed.UserPublic) bool {
	return u.Equal(b.user) || (b.cfg.Dir != nil && len(b.cfg.Dir.Certs(u)) > 0)
}

// hold keeps e until what it waits for arrives; stranger: see Held
// envelopes.
func (b *Book) hold(e *envelope, stranger bool) {
	for _, h := range b.held[e.conv] {
		if h.id == e.id {
			return
		}
	}
	u := e.cert.User
	if stranger && b.nstrangers >= MaxHeldStrangers {
		b.evictOldest(func(_ ID, h *heldEnv) bool { return h.stranger })
	}
	if b.heldBy[u] >= MaxHeldPerUser {
		b.evictOldest(func(_ ID, h *heldEnv) bool { return h.user == u })
	}
	if len(b.held[e.conv]) >= MaxHeldPerConv {
		b.evictHeaviest(func(id ID) bool { return id == e.conv })
	}
	for b.nheld >= MaxHeld || (b.nheld > 0 && b.heldBytes+len(e.raw) > MaxHeldBytes) {
		b.evictHeaviest(func(ID) bool { return true })
	}
	b.heldAge++
	b.held[e.conv] = append(b.held[e.conv], &heldEnv{id: e.id, raw: e.raw, user: u, age: b.heldAge, stranger: stranger})
	if stranger {
		b.nstrangers++
	}
	b.nheld++
	b.heldBytes += len(e.raw)
	b.heldBy[u]++
}

// evictHeaviest drops the oldest held envelope of the author user with
// the most held envelopes in the conversations in.
func (b *Book) evictHeaviest(in func(ID) bool) {
	n := map[seed.UserPublic]int{}
	var heavy seed.UserPublic
	for id, q := range b.held {
		if !in(id) {
			continue
		}
		for _, h := range q {
			n[h.user]++
			if n[h.user] > n[heavy] {
				heavy = h.user
			}
		}
	}
	b.evictOldest(func(id ID, h *heldEnv) bool { return in(id) && h.user == heavy })
}

// evictOldest drops the oldest held envelope that match says to.
func (b *Book) evictOldest(match func(ID, *heldEnv) bool) {
	var oldest *heldEnv
	var conv ID
	for id, q := range b.held {
		for _, h := range q {
			if match(id, h) && (oldest == nil || h.age < oldest.age) {
				oldest, conv = h, id
			}
		}
	}
	if oldest != nil {
		b.unhold(conv, oldest.id)
	}
}

func (b *Book) unhold(conv ID, id [32]byte) {
	q := b.held[conv]
	for i, h := range q {
		if h.id == id {
			b.held[conv] = slices.Delete(q, i, i+1)
			b.nheld--
			b.heldBytes -= len(h.raw)
			if h.stranger {
				b.nstrangers--
			}
			if b.heldBy[h.user]--; b.heldBy[h.user] == 0 {
				delete(b.heldBy, h.user)
			}
			break
		}
	}
	if len(b.held[conv]) == 0 {
		delete(b.held, conv)
	}
}
