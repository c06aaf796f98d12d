package agent

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/seed"
)

// Store-and-forward. A device that a friend (or an own device) hands an
// envelope in a forward frame keeps it in bucket "forward" until it can
// deliver it to the device it is for, which may be offline for days, and
// then relays the ack it gets back to the envelope's author the same way.
// It forwards only to devices it knows (own devices and friends' devices
// in its roster), never further, and what it keeps is opaque to it: the
// payload is sealed to the recipients (package conversation); it sees the
// clear header (conversation ID, author device and certificate, sequence,
// Lamport time) and the sizes and times.
//
// Each origin (the device that handed the envelope over) has a quota of
// forwardPerOrigin envelopes and forwardBytesPerOrigin bytes; all origins
// together forwardTotal and forwardBytesTotal. Envelopes older than
// forwardTTL are dropped. The same envelope for the same device is kept
// once.

// Limits of the forward queue.
const (
	forwardPerOrigin      = 2000
	forwardBytesPerOrigin = 16 << 20
	forwardTotal          = 20000
	forwardBytesTotal     = 64 << 20
	forwardTTL            = 30 * 24 * time.Hour
)

// errForwardQuota: the origin's, or the device's, forward quota is full.
var errForwardQuota = errors.New("the forward quota is full")

// fwdItem is one envelope held for a device, as stored.
type fwdItem struct {
	To       seed.DevicePublic `json:"to"`
	Origin   seed.DevicePublic `json:"origin"`
	Envelope []byte            `json:"envelope"`
	Queued   time.Time         `json:"queued"`
	// Seq orders the items of one queue: oldest first.
	Seq uint64 `json:"seq"`
}

// fwdMeta is what the queue keeps in memory of an item.
type fwdMeta struct {
	to, origin seed.DevicePublic
	size       int
	queued     time.Time
	seq        uint64
}

// forwardQueue is the bucket and an index of it. Safe for concurrent use.
type forwardQueue struct {
	st *store.Store
	// Quotas, the constants above but in tests.
	perOrigin, bytesPerOrigin int

	mu      sync.Mutex
	items   map[string]fwdMeta             // guarded by mu: by key
	count   map[seed.DevicePublic]int      // guarded by mu: items per origin
	bytes   map[seed.DevicePublic]int      // guarded by mu: bytes per origin
	byDest  map[seed.DevicePublic][]string // guarded by mu: keys per recipient, oldest first
	total   int                            // guarded by mu: bytes of all items
	seq     uint64                         // guarded by mu: the newest item's Seq
	dropped int                            // guarded by mu: refused for quota since start
}

// fwdKey is an item's key: the recipient and the envelope's hash.
func fwdKey(to seed.DevicePublic, env []byte) string {
	h := sha256.Sum256(env)
	return to.ID() + "/" + hex.EncodeToString(h[:16])
}

// openForwardQueue loads the index from st, dropping expired items.
func openForwardQueue(st *store.Store, now time.Time) (*forwardQueue, error) {
	q := &forwardQueue{st: st, perOrigin: forwardPerOrigin, bytesPerOrigin: forwardBytesPerOrigin, items: map[string]fwdMeta{}, count: map[seed.DevicePublic]int{},
		bytes: map[seed.DevicePublic]int{}, byDest: map[seed.DevicePublic][]string{}}
	var expired []string
	type entry struct {
		key string
		m   fwdMeta
	}
	var all []entry
	err := st.View(func(tx *store.Tx) error {
		return tx.List(store.BucketForward, func(key string, raw []byte) error {
			var it fwdItem
			if json.Unmarshal(raw, &it) != nil || now.Sub(it.Queued) > forwardTTL {
				expired = append(expired, key)
				return nil
			}
			all = append(all, entry{key, fwdMeta{to: it.To, origin: it.Origin, size: len(it.Envelope), queued: it.Queued, seq: it.Seq}})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("loading the forward queue: %w", err)
	}
	slices.SortFunc(all, func(a, b entry) int { return cmp.Compare(a.m.seq, b.m.seq) })
	for _, e := range all {
		q.index(e.key, e.m)
	}
	if len(expired) > 0 {
		if err := q.delete(expired); err != nil {
			return nil, err
		}
	}
	return q, nil
}

func (q *forwardQueue) index(key string, m fwdMeta) {
	q.items[key] = m
	q.count[m.origin]++
	q.bytes[m.origin] += m.size
	q.total += m.size
	q.byDest[m.to] = append(q.byDest[m.to], key)
	q.seq = max(q.seq, m.seq)
}

// put stores env for device to, handed over by origin. A copy held
// already is no error; a full quota is errForwardQuota.
func (q *forwardQueue) put(to, origin seed.DevicePublic, env []byte, now time.Time) error {
	key := fwdKey(to, env)
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.items[key]; ok {
		return nil
	}
	if q.count[origin] >= q.perOrigin || q.bytes[origin]+len(env) > q.bytesPerOrigin ||
		len(q.items) >= forwardTotal || q.total+len(env) > forwardBytesTotal {
		q.dropped++
		return errForwardQuota
	}
	it := fwdItem{To: to, Origin: origin, Envelope: env, Queued: now.UTC(), Seq: q.seq + 1}
	if err := q.st.Update(func(tx *store.Tx) error { return tx.Put(store.BucketForward, key, it) }); err != nil {
		return fmt.Errorf("storing a forwarded envelope: %w", err)
	}
	q.index(key, fwdMeta{to: to, origin: origin, size: len(env), queued: it.Queued, seq: it.Seq})
	return nil
}

// targets lists the devices the queue holds envelopes for.
func (q *forwardQueue) targets() []seed.DevicePublic {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]seed.DevicePublic, 0, len(q.byDest))
	for d := range q.byDest {
		out = append(out, d)
	}
	return out
}

// fwdEntry is an item handed out for delivery.
type fwdEntry struct {
	key string
	fwdItem
}

// pending returns up to max items for device to, oldest first, within
// maxBytes (at least one).
func (q *forwardQueue) pending(to seed.DevicePublic, max, maxBytes int) ([]fwdEntry, error) {
	q.mu.Lock()
	keys := slices.Clone(q.byDest[to])
	q.mu.Unlock()
	var out []fwdEntry
	size := 0
	err := q.st.View(func(tx *store.Tx) error {
		for _, k := range keys {
			if len(out) == max {
				return nil
			}
			var it fwdItem
			ok, err := tx.Get(store.BucketForward, k, &it)
			if err != nil || !ok {
				continue
			}
			if len(out) > 0 && size+len(it.Envelope) > maxBytes {
				return nil
			}
			size += len(it.Envelope)
			out = append(out, fwdEntry{k, it})
		}
		return nil
	})
	return out, err
}

// delete removes items by key.
func (q *forwardQueue) delete(keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	err := q.st.Update(func(tx *store.Tx) error {
		for _, k := range keys {
			if err := tx.Delete(store.BucketForward, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("removing forwarded envelopes: %w", err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, k := range keys {
		m, ok := q.items[k]
		if !ok {
			continue
		}
		delete(q.items, k)
		q.count[m.origin]--
		q.bytes[m.origin] -= m.size
		q.total -= m.size
		if q.count[m.origin] <= 0 {
			delete(q.count, m.origin)
			delete(q.bytes, m.origin)
		}
		ks := slices.DeleteFunc(q.byDest[m.to], func(s string) bool { return s == k })
		if len(ks) == 0 {
			delete(q.byDest, m.to)
		} else {
			q.byDest[m.to] = ks
		}
	}
	return nil
}

// expire drops the items older than forwardTTL.
func (q *forwardQueue) expire(now time.Time) error {
	q.mu.Lock()
	var old []string
	for k, m := range q.items {
		if now.Sub(m.queued) > forwardTTL {
			old = append(old, k)
		}
	}
	q.mu.Unlock()
	return q.delete(old)
}

// stats returns the items and bytes held and the refusals for quota.
func (q *forwardQueue) stats() (items, bytes, dropped int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items), q.total, q.dropped
}
