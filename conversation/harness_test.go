package conversation

import (
	"crypto/sha512"
	"errors"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// A lab of users, their devices (each a Book on its own bbolt file) and an
// in-memory network that drops, duplicates and reorders envelopes.

var quiet = slog.New(slog.DiscardHandler)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type user struct {
	name string
	key  seed.UserKey
	devs []*device
	revs []seed.Revocation
}

type device struct {
	name    string
	u       *user
	self    Self
	path    string
	st      *store.Store
	book    *Book
	offline bool
}

type dir struct {
	mu      sync.Mutex
	revoked map[seed.DevicePublic]bool
	certs   map[seed.UserPublic][]seed.DeviceCert
}

func (d *dir) Certs(u seed.UserPublic) []seed.DeviceCert {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.certs[u]
}
func (d *dir) Revoked(dev seed.DevicePublic) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.revoked[dev]
}

type lab struct {
	t     testing.TB
	clock *clock
	dir   *dir
	users []*user
	devs  []*device
}

func newLab(t testing.TB) *lab {
	return &lab{t: t, clock: &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}, dir: &dir{revoked: map[seed.DevicePublic]bool{}, certs: map[seed.UserPublic][]seed.DeviceCert{}}}
}

func seedOf(name string) []byte {
	s := sha512.Sum512([]byte("conversation test " + name))
	return s[:]
}

// addUser makes a user with ndev devices, each with an open Book.
func (l *lab) addUser(name string, ndev int) *user {
	l.t.Helper()
	k, err := seed.DeriveUser(seedOf(name))
	if err != nil {
		l.t.Fatal(err)
	}
	u := &user{name: name, key: k}
	for i := range ndev {
		d := l.device(u, i, filepath.Join(l.t.TempDir(), store.FileName))
		l.open(d)
		u.devs = append(u.devs, d)
		l.devs = append(l.devs, d)
	}
	l.users = append(l.users, u)
	return u
}

// device makes the i-th device of u, the same in every process.
func (l *lab) device(u *user, i int, path string) *device {
	l.t.Helper()
	d, err := makeDevice(u, i, path)
	if err != nil {
		l.t.Fatal(err)
	}
	return d
}

func makeDevice(u *user, i int, path string) (*device, error) {
	dk, ak, err := seed.DeriveDevice(seedOf(u.name), uint32(i))
	if err != nil {
		return nil, err
	}
	cert, err := u.key.IssueDeviceCert(seed.DeviceCert{Device: dk.Public(), Index: uint32(i), Archive: ak.Recipient(),
		Name: u.name + string(rune('0'+i)), Issued: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		return nil, err
	}
	d := &device{name: cert.Name, u: u, self: Self{Key: dk, Cert: cert, Archive: ak}, path: path}
	copy(d.self.AtRest[:], seedOf("at rest "+cert.Name))
	return d, nil
}

// open opens d's store and Book (again, after close or a crash).
func (l *lab) open(d *device) {
	l.t.Helper()
	st, err := store.Open(d.path)
	if err != nil {
		l.t.Fatal(err)
	}
	b, err := Open(Config{Store: st, Self: d.self, Dir: l.dir, Now: l.clock.Now, Log: quiet})
	if err != nil {
		st.Close()
		l.t.Fatal(err)
	}
	d.st, d.book = st, b
	l.t.Cleanup(func() { d.close() })
}

func (d *device) close() {
	if d.book != nil {
		d.book.Close()
		d.st.Close()
		d.book, d.st = nil, nil
	}
}

func (u *user) roster(t testing.TB) roster.Signed {
	t.Helper()
	var certs []seed.DeviceCert
	for _, d := range u.devs {
		certs = append(certs, d.self.Cert)
	}
	s, err := roster.NewSigned(u.key.Public(), certs, u.revs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// create makes a conversation by creator's first device with the other
// users, carrying everyone's rosters.
func (l *lab) create(creator *user, p Pattern, rule, topic string, others ...*user) ID {
	l.t.Helper()
	nc := NewConversation{Topic: topic, Pattern: p, Rule: rule, Rosters: []roster.Signed{creator.roster(l.t)}}
	for _, o := range others {
		nc.Members = append(nc.Members, o.key.Public())
		nc.Rosters = append(nc.Rosters, o.roster(l.t))
	}
	id, err := creator.devs[0].book.Create(nc)
	if err != nil {
		l.t.Fatal(err)
	}
	return id
}

func (l *lab) byDevice(p seed.DevicePublic) *device {
	for _, d := range l.devs {
		if d.self.Cert.Device == p {
			return d
		}
	}
	return nil
}

// packet is an envelope in flight to a device, and who to give its ack.
type packet struct {
	to, from *device
	env      []byte
}

// net is the shuffling network.
type net struct {
	l                 *lab
	rng               *rand.Rand
	drop, dup         float64
	refused, received int
}

func (l *lab) net(seed uint64, drop, dup float64) *net {
	return &net{l: l, rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), drop: drop, dup: dup}
}

// round sends every online device's pending items to online devices, in a
// random order, with drops and duplicates, and the acks back the same way.
// It reports whether anything was pending.
func (n *net) round() bool {
	var flight []packet
	any := false
	for _, d := range n.l.devs {
		if d.offline {
			continue
		}
		for _, to := range d.book.Recipients() {
			td := n.l.byDevice(to)
			any = true
			if td == nil || td.offline {
				continue
			}
			for _, o := range d.book.Pending(to, 1000) {
				flight = append(flight, packet{to: td, from: d, env: o.Envelope})
			}
		}
	}
	for len(flight) > 0 {
		i := n.rng.IntN(len(flight))
		p := flight[i]
		flight = slices.Delete(flight, i, i+1)
		if n.rng.Float64() < n.drop || p.to.offline {
			continue
		}
		if n.rng.Float64() < n.dup {
			flight = append(flight, p)
		}
		n.l.clock.Advance(10 * time.Millisecond)
		ack, err := p.to.book.Receive(p.env)
		n.received++
		switch {
		case err == nil, errors.Is(err, ErrHeld):
		case errors.Is(err, ErrRefused):
			n.refused++
		default:
			n.l.t.Fatalf("%s receiving from %s: %v", p.to.name, p.from.name, err)
		}
		if ack != nil && p.from != nil {
			flight = append(flight, packet{to: p.from, env: ack})
		}
	}
	return any
}

// settle runs rounds until no online device has anything pending for an
// online device.
func (n *net) settle() {
	n.l.t.Helper()
	for i := 0; i < 500; i++ {
		if !n.round() || n.quiet() {
			return
		}
	}
	n.l.t.Fatal("the network did not settle in 500 rounds")
}

func (n *net) quiet() bool {
	for _, d := range n.l.devs {
		if d.offline {
			continue
		}
		for _, to := range d.book.Recipients() {
			if td := n.l.byDevice(to); td != nil && !td.offline {
				return false
			}
		}
	}
	return true
}

func (l *lab) show(d *device, id ID) View {
	l.t.Helper()
	v, err := d.book.Show(id)
	if err != nil {
		l.t.Fatalf("%s: %v", d.name, err)
	}
	return v
}

func msgIDs(v View) []MessageID {
	out := make([]MessageID, len(v.Messages))
	for i, m := range v.Messages {
		out[i] = m.ID
	}
	return out
}

// countStored counts the envelopes d stored (messages and outcomes).
func countStored(t testing.TB, d *device) int {
	t.Helper()
	n := 0
	if err := d.st.List(store.BucketConvMessages, func(string, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
