package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/kith-project/kith/archive"
	"github.com/kith-project/kith/archive/disk"
	"github.com/kith-project/kith/cluster"
	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/conversation"
	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// The archive service (DESIGN §8, docs/archives.md "In the agent"). One
// goroutine, run, owned by the agent, does every archiving pass:
//
//  1. seal: conversations decided, or idle past Config.ArchiveIdle, are
//     exported, sealed twice (inner to this device's archive key, outer to
//     another own access device's or, alone, to the user's recovery key:
//     archive.RecipientsFor), their blobs written to HOME/blobs (package
//     archive/disk), a new sealed index written beside them, and the
//     placement recorded in the own cluster (archive.place). Only then is
//     the conversation forgotten (Book.Forget) and the store compacted,
//     so that no freed page keeps it.
//  2. reconcile: a placement that names this device for a blob its disk
//     lacks (a device restored from the phrase into a new home has the same
//     device ID and an empty blob folder) is dropped.
//  3. repair: archive.PlanRepair over the placement, who is online, and
//     who is lost (revoked, or not seen for Config.ArchiveGone); this
//     device carries out the copies it is the source of, over stream 0x08,
//     and records each new holder.
//  4. prune: superseded indexes older than the newest two are deleted
//     here and on friends' relays (archive_prune.go).
//
// Conversations archived by another own device are forgotten here too
// when their placement arrives.

// Defaults of the archive service.
const (
	DefaultArchiveIdle   = 30 * 24 * time.Hour
	DefaultArchiveGone   = 14 * 24 * time.Hour
	DefaultArchiveEvery  = time.Minute
	DefaultArchiveSettle = 10 * time.Minute
)

// archiver is the agent's archive service.
type archiver struct {
	// Constant after newArchiver.
	a     *Agent
	blobs *disk.Store
	state *archiveState
	kick  chan struct{}      // wakes run; buffered, one
	now   chan chan nowReply // "kith archive now"

	mu       sync.Mutex
	quota    int64             // guarded by mu: friends' quota on this device
	toForget []conversation.ID // guarded by mu: archived elsewhere, still here
	sealed   uint64            // guarded by mu: archives this device sealed, for RecipientsFor
	lastErr  error             // guarded by mu
}

// nowReply is the answer to an archive-now request.
type nowReply struct {
	ids []conversation.ID
	err error
}

// quotaKey is where the friends' quota is kept (bucket archive).
const quotaKey = "quota"

func newArchiver(a *Agent) (*archiver, error) {
	ar := &archiver{a: a, kick: make(chan struct{}, 1), now: make(chan chan nowReply)}
	var err error
	if ar.state, err = loadArchiveState(a.st); err != nil {
		return nil, err
	}
	ar.quota = disk.DefaultQuota
	if _, err := a.st.Get(store.BucketArchive, quotaKey, &ar.quota); err != nil {
		return nil, fmt.Errorf("reading the archive quota: %w", err)
	}
	blobs, rep, err := disk.Open(filepath.Join(a.cfg.Home, "blobs"), disk.Options{Self: a.dev.Cert.User, Quota: ar.quota, Logger: a.log.With("service", "archive")})
	if err != nil {
		return nil, fmt.Errorf("opening the blob folder: %w", err)
	}
	if len(rep.Damaged) > 0 || len(rep.Leftovers) > 0 {
		a.log.Warn("blob folder checked", "blobs", rep.Blobs, "damaged", len(rep.Damaged), "leftovers", len(rep.Leftovers))
	}
	ar.blobs = blobs
	a.convs.book.SetForgotten(ar.state.archivedIDs())
	for _, id := range ar.state.archivedIDs() {
		if _, err := a.convs.book.Show(id); err == nil {
			ar.toForget = append(ar.toForget, id)
		}
	}
	return ar, nil
}

// verifyBlobs reads every blob of the folder once, after start, and
// removes those damaged on disk (disk.Store.Verify): Open only checked
// their sizes, so that a device with gigabytes of archives starts at once.
// A blob removed is then missing from this device's holdings, and the
// pass it wakes has the placement say so and repair copy it back.
func (ar *archiver) verifyBlobs(ctx context.Context) error {
	ar.checkBlobs(ctx)
	<-ctx.Done() // a service runs until the agent stops
	return nil
}

func (ar *archiver) checkBlobs(ctx context.Context) {
	start := time.Now()
	damaged, err := ar.blobs.Verify(ctx)
	took := time.Since(start).Round(time.Millisecond).String()
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		ar.a.log.Warn("checking the blob folder: some blobs could not be read (left in place)", "err", err)
	}
	if len(damaged) > 0 {
		ar.a.log.Warn("blob folder checked: damaged blobs removed", "damaged", len(damaged), "took", took)
		ar.wake()
		return
	}
	ar.a.log.Debug("blob folder checked", "took", took)
}

// wake asks for a pass.
func (ar *archiver) wake() {
	select {
	case ar.kick <- struct{}{}:
	default:
	}
}

// run is the service.
func (ar *archiver) run(ctx context.Context) error {
	every := ar.a.cfg.ArchiveEvery
	t := time.NewTicker(every)
	defer t.Stop()
	events, cancel := ar.a.presence.Subscribe(16)
	defer cancel()
	for {
		var reply chan nowReply
		force := false
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case ev := <-events:
			// An own device back online: compare placements, repair.
			if p, ok := ar.a.book.peerFor(ev.Device); !ok || p.Kind != roster.KindOwn || ev.Kind != presence.PeerOnline {
				continue
			}
		case <-ar.kick:
		case reply = <-ar.now:
			force = true
		}
		ids, err := ar.pass(ctx, force)
		ar.mu.Lock()
		ar.lastErr = err
		ar.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			ar.a.log.Warn("archiving", "err", err)
		}
		if reply != nil {
			reply <- nowReply{ids: ids, err: err}
		}
	}
}

// archiveNow runs a pass at once and returns what it archived.
func (ar *archiver) archiveNow(ctx context.Context) ([]conversation.ID, error) {
	reply := make(chan nowReply, 1)
	select {
	case ar.now <- reply:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-reply:
		return r.ids, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// pass is one round: forget what others archived, seal, reconcile, repair.
func (ar *archiver) pass(ctx context.Context, force bool) ([]conversation.ID, error) {
	if err := ar.syncPlacement(ctx); err != nil {
		ar.a.log.Debug("placement sync", "err", err)
	}
	ar.forgetArchived()
	ids, err := ar.seal(ctx, force)
	ar.reconcile()
	rerr := ar.repair(ctx)
	perr := ar.prune(ctx)
	return ids, errors.Join(err, rerr, perr)
}

// eligible lists the conversations to archive: decided ones settled for
// ArchiveSettle, and those idle past ArchiveIdle; with force ("kith
// archive now", the user asking), every decided one at once.
func (ar *archiver) eligible(force bool) ([]conversation.ID, error) {
	list, err := ar.a.convs.book.List()
	if err != nil {
		return nil, err
	}
	now := ar.a.cfg.Now()
	var out []conversation.ID
	for _, s := range list {
		idle := now.Sub(s.Updated)
		// A decided conversation waits ArchiveSettle after its last change:
		// a concurrent outcome that wins (the lowest Lamport time and ID,
		// DESIGN §7) may still be on its way, and an archive keeps what
		// this device held when it sealed.
		if (s.Status == conversation.StatusDecided && (force || idle > ar.a.cfg.ArchiveSettle)) || idle > ar.a.cfg.ArchiveIdle {
			out = append(out, s.ID)
		}
	}
	slices.SortFunc(out, func(x, y conversation.ID) int { return slices.Compare(x[:], y[:]) })
	return out, nil
}

// isArchiver reports whether this device archives on its own: the own
// device with the lowest ID among those online does, so that two own
// devices, both member devices of every conversation, do not both seal
// the same ones. "kith archive now" archives on any device.
func (ar *archiver) isArchiver() bool {
	a := ar.a
	self := a.dev.Cert.Device
	online := a.onlineSet()
	for _, p := range a.book.reachable() {
		if p.Kind == roster.KindOwn && online[p.DeviceID] && !a.book.revoked(p.DeviceID) && slices.Compare(p.DeviceID[:], self[:]) < 0 {
			return false
		}
	}
	return true
}

// recipients are the two keys the next archive is sealed to.
func (ar *archiver) recipients() (archive.Recipients, error) {
	a := ar.a
	var others []seed.ArchiveRecipient
	for _, c := range (directory{a}).Certs(a.dev.Cert.User) {
		if !c.Device.Equal(a.dev.Cert.Device) && slices.Contains(c.Roles, "access") {
			others = append(others, c.Archive)
		}
	}
	var recovery seed.ArchiveRecipient
	if s := a.dev.Identity.RecoveryRecipient; s != "" {
		r, err := seed.ParseArchiveRecipient(s)
		if err != nil {
			return archive.Recipients{}, fmt.Errorf("the stored recovery recipient: %w", err)
		}
		recovery = r
	} else if len(others) == 0 {
		return archive.Recipients{}, errors.New("this device is the user's only one and its home has no recovery recipient (made before archives): restore it from the seed phrase, or pair another device")
	}
	ar.mu.Lock()
	n := ar.sealed
	ar.mu.Unlock()
	return archive.RecipientsFor(a.dev.Cert.Archive, others, recovery, n), nil
}

// seal archives the eligible conversations as one archive.
func (ar *archiver) seal(ctx context.Context, force bool) ([]conversation.ID, error) {
	if !force && !ar.isArchiver() {
		return nil, nil
	}
	ids, err := ar.eligible(force)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	a := ar.a
	records := make([]archive.Record, 0, len(ids))
	for _, id := range ids {
		data, err := a.convs.book.Export(id)
		if err != nil {
			return nil, fmt.Errorf("exporting %s: %w", id.String()[:12], err)
		}
		records = append(records, archive.Record{Conversation: id.String(), Data: data})
	}
	to, err := ar.recipients()
	if err != nil {
		return nil, err
	}
	self := a.dev.Cert.Device
	place := archivePlace{}
	// Each blob goes to the blob folder (synced) as soon as it is sealed,
	// so memory holds a few blobs whatever the history's size.
	sealed, err := archive.SealTo(ctx, records, to, nil, func(_ context.Context, b archive.Blob) error {
		if err := ar.blobs.Put(a.dev.Cert.User, b.Name, b.Data); err != nil {
			return fmt.Errorf("writing blob %s: %w", b.Name.Short(), err)
		}
		place.Hold = append(place.Hold, holding{Blob: b.Name, Size: int64(len(b.Data)), Device: self})
		return nil
	})
	for i := range records {
		clear(records[i].Data)
	}
	if err != nil {
		return nil, fmt.Errorf("sealing: %w", err)
	}
	entry := sealed.Entry()
	place.Archive = &entry
	ix, err := ar.sealIndex(entry, to)
	if err != nil {
		return nil, err
	}
	place.Index = ix
	place.Hold = append(place.Hold, holding{Blob: ix.Name, Size: ix.Size, Device: self})
	// The blobs are on disk and synced: record them, durably here and in
	// the cluster, before anything is forgotten.
	if err := ar.place(place); err != nil {
		return nil, err
	}
	ar.mu.Lock()
	ar.sealed++
	ar.mu.Unlock()
	// Copies to a second holder before the plaintext goes.
	if err := ar.repair(ctx); err != nil {
		a.log.Warn("replicating a new archive", "err", err)
	}
	if err := ar.forget(ids); err != nil {
		return ids, err
	}
	a.log.Info("archived", "conversations", len(ids), "blobs", len(entry.Blobs), "bytes", sealed.Size)
	return ids, nil
}

// sealIndex seals a new index listing every archive, with the new one,
// and the roster and friend list; it is written to the blob folder.
func (ar *archiver) sealIndex(newEntry archive.Entry, to archive.Recipients) (*indexRef, error) {
	a := ar.a
	entries, cur := ar.state.entries()
	if !slices.ContainsFunc(entries, func(e archive.Entry) bool { return e.ID == newEntry.ID }) {
		entries = append(entries, newEntry)
	}
	gen := uint64(1)
	if cur != nil {
		gen = cur.Generation + 1
	}
	r := a.book.rosterNow()
	own, err := r.SignedOf(a.dev.Cert.User, a.dev.Identity.Cert)
	if err != nil {
		return nil, fmt.Errorf("signing the roster for the index: %w", err)
	}
	rosterBytes, err := json.Marshal(own)
	if err != nil {
		return nil, err
	}
	friends, err := json.Marshal(indexFriends(r, a.book))
	if err != nil {
		return nil, err
	}
	ix := &archive.Index{Generation: gen, Created: a.cfg.Now().Truncate(time.Second), Archives: entries, Roster: rosterBytes, Friends: friends}
	blob, err := archive.SealIndex(ix, a.dev.Device, to)
	if err != nil {
		return nil, fmt.Errorf("sealing the index: %w", err)
	}
	if err := ar.blobs.Put(a.dev.Cert.User, blob.Name, blob.Data); err != nil {
		return nil, fmt.Errorf("writing the index: %w", err)
	}
	return &indexRef{Name: blob.Name, Size: int64(len(blob.Data)), Generation: gen}, nil
}

// indexFriend is one friend as the sealed index carries it: enough to
// find and trust them again after losing every device.
type indexFriend struct {
	Friend  roster.Friend   `json:"friend"`
	Devices []roster.Device `json:"devices"`
	// Addrs are the devices' last addresses, by device ID.
	Addrs map[string]string `json:"addrs,omitempty"`
}

func (f indexFriend) addrOf(d seed.DevicePublic) string { return f.Addrs[d.ID()] }

func indexFriends(r *roster.Roster, b *book) []indexFriend {
	out := []indexFriend{}
	for _, f := range r.Friends() {
		e := indexFriend{Friend: f, Devices: []roster.Device{}, Addrs: map[string]string{}}
		for _, d := range r.Devices() {
			if d.Kind == roster.KindFriend && d.UserID.Equal(f.UserID) {
				e.Devices = append(e.Devices, d)
				if p, ok := b.peerFor(d.DeviceID); ok && p.Addr != "" {
					e.Addrs[d.DeviceID.ID()] = p.Addr
				}
			}
		}
		out = append(out, e)
	}
	return out
}

// place applies a placement here, keeps it in the store, and proposes it
// to the own cluster.
func (ar *archiver) place(p archivePlace) error {
	if err := ar.applyPlace(p); err != nil {
		return err
	}
	n := ar.a.cluster.node.Load()
	if n == nil {
		return nil
	}
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := n.Propose(cluster.Command{Kind: kindArchivePlace, Body: body}); err != nil {
		return fmt.Errorf("queueing archive placement for the cluster: %w", err)
	}
	return nil
}

// applyPlace applies a placement (from here or the cluster) and stores
// the result.
func (ar *archiver) applyPlace(p archivePlace) error {
	changed, archived := ar.state.apply(p)
	if len(archived) > 0 {
		ar.a.convs.book.SetForgotten(archived)
		ar.mu.Lock()
		ar.toForget = append(ar.toForget, archived...)
		ar.mu.Unlock()
		ar.wake()
	}
	if !changed {
		return nil
	}
	if err := storeArchiveState(ar.a.st, ar.state.doc()); err != nil {
		return fmt.Errorf("storing the archive placement: %w", err)
	}
	if p.Index != nil || len(p.retired) > 0 {
		// An index superseded: this device deletes its copies of those
		// now older than the newest two (the state lock is not held).
		if _, n, err := ar.pruneOwn(); err != nil {
			ar.a.log.Warn("pruning superseded indexes", "err", err)
		} else if n > 0 {
			ar.wake() // the pass records it, and asks the relays
		}
	}
	return nil
}

// forgetArchived forgets the conversations archived (here or elsewhere)
// that this device still has.
func (ar *archiver) forgetArchived() {
	ar.mu.Lock()
	ids := ar.toForget
	ar.toForget = nil
	ar.mu.Unlock()
	var have []conversation.ID
	for _, id := range ids {
		if _, err := ar.a.convs.book.Show(id); err == nil {
			have = append(have, id)
		}
	}
	if len(have) == 0 {
		return
	}
	if err := ar.forget(have); err != nil {
		ar.a.log.Warn("forgetting archived conversations", "err", err)
		ar.mu.Lock()
		ar.toForget = append(ar.toForget, have...)
		ar.mu.Unlock()
	}
}

// forget destroys the at-rest copies of conversations: their records,
// then the freed pages (store.Compact).
func (ar *archiver) forget(ids []conversation.ID) error {
	for _, id := range ids {
		if err := ar.a.convs.book.Forget(id); err != nil {
			return err
		}
	}
	if err := ar.a.st.Compact(); err != nil {
		return fmt.Errorf("compacting the store after archiving: %w", err)
	}
	return nil
}

// reconcile drops placements naming this device for blobs its folder
// does not hold.
func (ar *archiver) reconcile() {
	self := ar.a.dev.Cert.Device
	var drop []holding
	for _, p := range ar.state.placements() {
		if slices.Contains(p.Holders, self) && !ar.blobs.Has(p.Name) {
			drop = append(drop, holding{Blob: p.Name, Size: p.Size, Device: self})
		}
	}
	if len(drop) > 0 {
		if err := ar.place(archivePlace{Drop: drop}); err != nil {
			ar.a.log.Warn("dropping lost holdings", "err", err)
		}
	}
}
