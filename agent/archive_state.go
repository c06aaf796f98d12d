package agent

import (
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
}

// Bounds of a placement command and document.
const (
	maxPlaceEntries   = 1 << 16
	maxArchiveEntries = 1 << 16
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
}

func newArchiveState() *archiveState {
	return &archiveState{archives: map[archive.ArchiveID]archive.Entry{}, convs: map[conversation.ID]archive.ArchiveID{},
		holders: map[archive.BlobName]map[seed.DevicePublic]struct{}{}, sizes: map[archive.BlobName]int64{}}
}

// decodePlace parses an archive.place body, bounded.
func decodePlace(b []byte) (archivePlace, error) {
	var p archivePlace
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("an archive.place entry: %w", err)
	}
	if len(p.Hold)+len(p.Drop) > maxPlaceEntries {
		return p, fmt.Errorf("an archive.place entry of %d holdings", len(p.Hold)+len(p.Drop))
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
		if s.index != nil {
			delete(s.holders, s.index.Name)
			delete(s.sizes, s.index.Name)
		}
		s.index = ix
		s.sizes[ix.Name] = ix.Size
		changed = true
	}
	for _, h := range p.Hold {
		if _, known := s.sizes[h.Blob]; !known {
			continue // an index superseded meanwhile, or an unknown blob
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
	s.apply(archivePlace{Index: d.Index, Hold: d.Holders})
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
	return a.archives.applyPlace(archivePlace{Index: doc.Archive.Index, Hold: doc.Archive.Holders})
}
