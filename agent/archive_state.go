package agent

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/kith-project/kith/archive"
	"github.com/kith-project/kith/conversation"
	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/seed"
)

// Archive placement in the own cluster (DESIGN §8). Commands of kind
// archive.place say which archives exist (their blob names, sizes and the
// two recipients, never anything of their plaintext), which device holds
// which blob, and which sealed index is current. Every own device applies
// them to the same archiveState, which it also keeps in the store (bucket
// archive, key state) so that it knows its placement before the cluster
// has replayed its log, and which the cluster's snapshot carries
// (rosterDoc.Archive). Applying is idempotent: a device applies its own
// command at once and again when the cluster commits it.

// kindArchivePlace is the cluster command kind of archive placement.
const kindArchivePlace = "archive.place"

// archivePlace is the body of an archive.place command.
type archivePlace struct {
	// Archive is a new archive.
	Archive *archive.Entry `json:"archive,omitempty"`
	// Index is the newest sealed index.
	Index *indexRef `json:"index,omitempty"`
	// Hold and Drop add and remove holders.
	Hold []holding `json:"hold,omitempty"`
	Drop []holding `json:"drop,omitempty"`
	// Pruned are superseded indexes a device no longer holds (it deleted
	// its copy), or will never delete (revoked, gone).
	Pruned []holding `json:"pruned,omitempty"`

	// retired are superseded indexes from a stored or snapshotted
	// document (archiveDoc.Old), never from a command.
	retired []oldIndex
}

// oldIndex is a superseded index and the devices that may still hold it.
// The newest two generations are kept; the older ones are deleted from
// every holder (archive_prune.go). They are followed until maxOldIndexes
// newer ones push them out, not forgotten once no holder is listed: a
// copy can land after its index was superseded (a relay's, recorded late;
// an own device's, from a sync), and the device that holds it deletes it
// when it learns of it.
type oldIndex struct {
	Name       archive.BlobName    `json:"name"`
	Size       int64               `json:"size"`
	Generation uint64              `json:"generation"`
	Holders    []seed.DevicePublic `json:"holders"`
}

// indexRef names a sealed index blob.
type indexRef struct {
	Name       archive.BlobName `json:"name"`
	Size       int64            `json:"size"`
	Generation uint64           `json:"generation"`
}

// holding is one blob on one device.
type holding struct {
	Blob   archive.BlobName  `json:"blob"`
	Size   int64             `json:"size"`
	Device seed.DevicePublic `json:"device"`
}

// archiveDoc is the whole placement, as stored and snapshotted.
type archiveDoc struct {
	Archives []archive.Entry `json:"archives"`
	Index    *indexRef       `json:"index,omitempty"`
	Holders  []holding       `json:"holders"`
	// Old are the superseded indexes still to delete somewhere.
	Old []oldIndex `json:"old,omitempty"`
}

// Bounds of a placement command and document.
const (
	maxPlaceEntries   = 1 << 16
	maxArchiveEntries = 1 << 16
	// maxOldIndexes bounds the superseded indexes kept to delete: past
	// it, the oldest is no longer followed (its copies stay where they
	// are).
	maxOldIndexes = 64
	maxOldHolders = 256
)

// archiveState is the placement in memory. Its methods are safe for
// concurrent use.
type archiveState struct {
	mu       sync.Mutex
	archives map[archive.ArchiveID]archive.Entry                 // guarded by mu
	order    []archive.ArchiveID                                 // guarded by mu: archives in the order they came
	convs    map[conversation.ID]archive.ArchiveID               // guarded by mu
	holders  map[archive.BlobName]map[seed.DevicePublic]struct{} // guarded by mu
	sizes    map[archive.BlobName]int64                          // guarded by mu
	index    *indexRef                                           // guarded by mu
	old      []oldIndex                                          // guarded by mu: by generation, oldest first
	blobs    map[archive.BlobName]struct{}                       // guarded by mu: the archives' blobs
}

func newArchiveState() *archiveState {
	return &archiveState{archives: map[archive.ArchiveID]archive.Entry{}, convs: map[conversation.ID]archive.ArchiveID{},
		holders: map[archive.BlobName]map[seed.DevicePublic]struct{}{}, sizes: map[archive.BlobName]int64{},
		blobs: map[archive.BlobName]struct{}{}}
}

// decodePlace parses an archive.place body, bounded.
func decodePlace(b []byte) (archivePlace, error) {
	var p archivePlace
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("an archive.place entry: %w", err)
	}
	if n := len(p.Hold) + len(p.Drop) + len(p.Pruned); n > maxPlaceEntries {
		return p, fmt.Errorf("an archive.place entry of %d holdings", n)
	}
	if e := p.Archive; e != nil {
		if len(e.Blobs) == 0 || len(e.Blobs) > archive.MaxParts || len(e.Conversations) > archive.MaxRecords {
			return p, fmt.Errorf("an archive.place entry with %d blobs and %d conversations", len(e.Blobs), len(e.Conversations))
		}
		for _, c := range e.Conversations {
			if _, err := conversation.ParseID(c); err != nil {
				return p, fmt.Errorf("an archive.place entry: %w", err)
			}
		}
	}
	return p, nil
}

// apply applies a placement command and reports whether it changed
// anything. The conversations of a new archive are returned, for the
// caller to forget its own copies.
func (s *archiveState) apply(p archivePlace) (changed bool, archived []conversation.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := p.Archive; e != nil {
		if _, ok := s.archives[e.ID]; !ok && len(s.archives) < maxArchiveEntries {
			s.archives[e.ID] = *e
			s.order = append(s.order, e.ID)
			for _, b := range e.Blobs {
				s.sizes[b.Name] = b.Size
				s.blobs[b.Name] = struct{}{}
			}
			changed = true
		}
		for _, c := range e.Conversations {
			id, err := conversation.ParseID(c)
			if err != nil {
				continue
			}
			if s.convs[id] != e.ID {
				s.convs[id] = e.ID
				changed = true
			}
			archived = append(archived, id)
		}
	}
	if ix := p.Index; ix != nil && (s.index == nil || ix.Generation > s.index.Generation) {
		prev, c := s.index, *ix
		s.index = &c
		if prev != nil && prev.Name != ix.Name && !s.isArchiveBlobLocked(prev.Name) {
			s.retireLocked(*prev)
			delete(s.holders, prev.Name)
			delete(s.sizes, prev.Name)
		}
		s.sizes[ix.Name] = ix.Size
		changed = true
	}
	for _, o := range p.retired {
		if s.addOldLocked(o) {
			changed = true
		}
	}
	for _, h := range p.Pruned {
		for i := range s.old {
			if o := &s.old[i]; o.Name == h.Blob {
				if j := slices.Index(o.Holders, h.Device); j >= 0 {
					o.Holders = slices.Delete(o.Holders, j, j+1)
					changed = true
				}
			}
		}
	}
	for _, h := range p.Hold {
		if _, known := s.sizes[h.Blob]; !known {
			// An index superseded meanwhile (a copy to a relay that
			// landed after the next index): its new holder must delete
			// it too. An unknown blob is ignored.
			if s.holdOldLocked(h) {
				changed = true
			}
			continue
		}
		m := s.holders[h.Blob]
		if m == nil {
			m = map[seed.DevicePublic]struct{}{}
			s.holders[h.Blob] = m
		}
		if _, ok := m[h.Device]; !ok {
			m[h.Device] = struct{}{}
			changed = true
		}
	}
	for _, h := range p.Drop {
		if m := s.holders[h.Blob]; m != nil {
			if _, ok := m[h.Device]; ok {
				delete(m, h.Device)
				changed = true
			}
		}
	}
	return changed, archived
}

// doc returns the placement as a document.
func (s *archiveState) doc() archiveDoc {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := archiveDoc{Archives: []archive.Entry{}, Holders: []holding{}}
	for _, id := range s.order {
		d.Archives = append(d.Archives, s.archives[id])
	}
	if s.index != nil {
		ix := *s.index
		d.Index = &ix
	}
	for _, name := range s.namesLocked() {
		for dev := range s.holders[name] {
			d.Holders = append(d.Holders, holding{Blob: name, Size: s.sizes[name], Device: dev})
		}
	}
	for _, o := range s.old {
		o.Holders = slices.Clone(o.Holders)
		d.Old = append(d.Old, o)
	}
	slices.SortFunc(d.Holders, func(x, y holding) int {
		if c := slices.Compare(x.Blob[:], y.Blob[:]); c != 0 {
			return c
		}
		return slices.Compare(x.Device[:], y.Device[:])
	})
	return d
}

// load merges a document (a snapshot, or what the store kept).
func (s *archiveState) load(d archiveDoc) {
	for i := range d.Archives {
		s.apply(archivePlace{Archive: &d.Archives[i]})
	}
	s.apply(archivePlace{Index: d.Index, Hold: d.Holders, retired: d.Old})
}

// retireLocked keeps superseded index ix, with its holders, to delete
// once it is older than the newest two; s.mu is held.
func (s *archiveState) retireLocked(ix indexRef) {
	o := oldIndex{Name: ix.Name, Size: ix.Size, Generation: ix.Generation}
	for d := range s.holders[ix.Name] {
		o.Holders = append(o.Holders, d)
	}
	slices.SortFunc(o.Holders, func(x, y seed.DevicePublic) int { return slices.Compare(x[:], y[:]) })
	s.addOldLocked(o)
}

// addOldLocked adds a superseded index unless it is known, is the
// current index, or names an archive's blob (a malformed placement must
// never have an archive deleted); s.mu is held.
func (s *archiveState) addOldLocked(o oldIndex) bool {
	if (s.index != nil && (o.Name == s.index.Name || o.Generation >= s.index.Generation)) || s.isArchiveBlobLocked(o.Name) ||
		slices.ContainsFunc(s.old, func(x oldIndex) bool { return x.Name == o.Name }) {
		return false
	}
	o.Holders = slices.Clone(o.Holders[:min(len(o.Holders), maxOldHolders)])
	s.old = append(s.old, o)
	slices.SortStableFunc(s.old, func(x, y oldIndex) int { return cmp.Compare(x.Generation, y.Generation) })
	if len(s.old) > maxOldIndexes {
		s.old = slices.Delete(s.old, 0, len(s.old)-maxOldIndexes)
	}
	return true
}

// holdOldLocked records h's device as a holder of superseded index
// h.Blob, if it is one still followed; s.mu is held.
func (s *archiveState) holdOldLocked(h holding) bool {
	for i := range s.old {
		o := &s.old[i]
		if o.Name != h.Blob {
			continue
		}
		if slices.Contains(o.Holders, h.Device) || len(o.Holders) >= maxOldHolders {
			return false
		}
		o.Holders = append(o.Holders, h.Device)
		return true
	}
	return false
}

// keptOldLocked is the generation of the second-newest index: superseded
// indexes of that generation or above are kept; s.mu is held.
func (s *archiveState) keptOldLocked() uint64 {
	if len(s.old) == 0 {
		return 0
	}
	return s.old[len(s.old)-1].Generation
}

// isArchiveBlobLocked reports whether n is a blob of an archive; s.mu is
// held.
func (s *archiveState) isArchiveBlobLocked(n archive.BlobName) bool {
	_, ok := s.blobs[n]
	return ok
}

// prunable returns the superseded indexes to delete: older than the
// newest two generations (the current index and the one before it are
// never among them), and no archive's blob.
func (s *archiveState) prunable() []oldIndex {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := s.keptOldLocked()
	var out []oldIndex
	for _, o := range s.old {
		if o.Generation >= keep || (s.index != nil && (o.Name == s.index.Name || o.Generation >= s.index.Generation)) || s.isArchiveBlobLocked(o.Name) {
			continue
		}
		o.Holders = slices.Clone(o.Holders)
		out = append(out, o)
	}
	return out
}

// namesLocked returns every blob name the placement knows, sorted; s.mu
// is held.
func (s *archiveState) namesLocked() []archive.BlobName {
	out := make([]archive.BlobName, 0, len(s.sizes))
	for n := range s.sizes {
		out = append(out, n)
	}
	return archive.SortNames(out)
}

// placements returns every blob with its size and holders.
func (s *archiveState) placements() []archive.Placement {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []archive.Placement
	for _, n := range s.namesLocked() {
		p := archive.Placement{Name: n, Size: s.sizes[n]}
		for d := range s.holders[n] {
			p.Holders = append(p.Holders, d)
		}
		slices.SortFunc(p.Holders, func(x, y seed.DevicePublic) int { return slices.Compare(x[:], y[:]) })
		out = append(out, p)
	}
	return out
}

// entryOf returns the archive holding conversation id.
func (s *archiveState) entryOf(id conversation.ID) (archive.Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	aid, ok := s.convs[id]
	if !ok {
		return archive.Entry{}, false
	}
	e, ok := s.archives[aid]
	return e, ok
}

// archivedIDs returns the archived conversations.
func (s *archiveState) archivedIDs() []conversation.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]conversation.ID, 0, len(s.convs))
	for id := range s.convs {
		out = append(out, id)
	}
	slices.SortFunc(out, func(x, y conversation.ID) int { return slices.Compare(x[:], y[:]) })
	return out
}

// entries returns the archives in order, and the current index.
func (s *archiveState) entries() ([]archive.Entry, *indexRef) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]archive.Entry, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.archives[id])
	}
	var ix *indexRef
	if s.index != nil {
		c := *s.index
		ix = &c
	}
	return out, ix
}

// holdersOf returns the devices holding blob n.
func (s *archiveState) holdersOf(n archive.BlobName) []seed.DevicePublic {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []seed.DevicePublic
	for d := range s.holders[n] {
		out = append(out, d)
	}
	slices.SortFunc(out, func(x, y seed.DevicePublic) int { return slices.Compare(x[:], y[:]) })
	return out
}

// storeArchiveState writes the placement to the store.
func storeArchiveState(st *store.Store, d archiveDoc) error {
	return st.Put(store.BucketArchive, "state", d)
}

// loadArchiveState reads the placement the store kept.
func loadArchiveState(st *store.Store) (*archiveState, error) {
	s := newArchiveState()
	var d archiveDoc
	if _, err := st.Get(store.BucketArchive, "state", &d); err != nil {
		return nil, fmt.Errorf("reading the archive placement: %w", err)
	}
	s.load(d)
	return s, nil
}

// applyArchivePlace takes a committed archive.place entry.
func (a *Agent) applyArchivePlace(b []byte) error {
	p, err := decodePlace(b)
	if err != nil {
		return err
	}
	return a.archives.applyPlace(p)
}

// restoreArchiveDoc merges the placement a cluster snapshot carries.
func (a *Agent) restoreArchiveDoc(b []byte) error {
	var doc struct {
		Archive *archiveDoc `json:"archive"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Archive == nil {
		return nil // decodeRosterDoc judged the document
	}
	if len(doc.Archive.Archives) > maxArchiveEntries || len(doc.Archive.Holders) > maxPlaceEntries {
		return fmt.Errorf("a snapshot's archive placement is too large")
	}
	for i := range doc.Archive.Archives {
		if err := a.archives.applyPlace(archivePlace{Archive: &doc.Archive.Archives[i]}); err != nil {
			return err
		}
	}
	if len(doc.Archive.Old) > maxOldIndexes {
		return fmt.Errorf("a snapshot's archive placement has %d superseded indexes", len(doc.Archive.Old))
	}
	return a.archives.applyPlace(archivePlace{Index: doc.Archive.Index, Hold: doc.Archive.Holders, retired: doc.Archive.Old})
}
