package conversation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/kith-project/kith/internal/store"
)

// Archiving (issue 13). The agent seals a decided or idle conversation
// into an archive (package archive) with Export, then destroys the
// device's copy with Forget and compacts the store file, so that freed
// bbolt pages keep nothing. A device reading archived history decodes
// the export with ParseExport.
//
// An export is JSON: {"kith_export": 1, "view": View}, the conversation as
// Show returns it (topic, pattern, rule, members, creator, every accepted
// message with author, device, kind, body, time, Lamport time and ID, and
// the outcome). It is plaintext: it exists only inside the two age layers
// of an archive, and in memory.

// ExportVersion is the version of the export format.
const ExportVersion = 1

// MaxExportSize bounds an export ParseExport accepts: 64 MiB.
const MaxExportSize = 64 << 20

// ErrBadExport is the error of bytes that are not an export.
var ErrBadExport = errors.New("conversation: not a conversation export")

type exportDoc struct {
	Version int  `json:"kith_export"`
	View    View `json:"view"`
}

// Export returns conversation id's history, self-contained, for sealing
// into an archive. ErrNotFound for an unknown conversation.
func (b *Book) Export(id ID) ([]byte, error) {
	v, err := b.Show(id)
	if err != nil {
		return nil, err
	}
	return json.Marshal(exportDoc{Version: ExportVersion, View: v})
}

// ParseExport decodes an export made by Export. It checks the form, not
// signatures: an export comes out of an archive that only the user's own
// keys open, and the archive's layers authenticate it.
func ParseExport(data []byte) (View, error) {
	if len(data) > MaxExportSize {
		return View{}, fmt.Errorf("%w: %d bytes, more than %d", ErrBadExport, len(data), MaxExportSize)
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	var doc exportDoc
	if err := d.Decode(&doc); err != nil {
		return View{}, fmt.Errorf("%w: %w", ErrBadExport, err)
	}
	if d.More() {
		return View{}, fmt.Errorf("%w: data after the export", ErrBadExport)
	}
	if doc.Version != ExportVersion {
		return View{}, fmt.Errorf("%w: version %d, this kith reads %d", ErrBadExport, doc.Version, ExportVersion)
	}
	var zero ID
	if doc.View.ID == zero {
		return View{}, fmt.Errorf("%w: no conversation ID", ErrBadExport)
	}
	if _, err := ParsePattern(string(doc.View.Pattern)); err != nil {
		return View{}, fmt.Errorf("%w: %w", ErrBadExport, err)
	}
	return doc.View, nil
}

// Forget removes every record of conversation id from the store and from
// memory: the conversation, its envelopes and its outbox items. The
// caller compacts the store file afterwards (store.Compact), since bbolt's
// freed pages keep the old bytes. From then on the Book acknowledges the
// conversation's envelopes without storing them (a member re-sending one
// must not bring it back), until the process ends; the agent calls
// SetForgotten at start with the conversations it archived. Forgetting an
// unknown conversation only marks it forgotten.
func (b *Book) Forget(id ID) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	b.markForgotten(id)
	for _, h := range b.held[id] {
		b.nheld--
		b.heldBytes -= len(h.raw)
	}
	delete(b.held, id)
	var keys []string
	prefix := id.String() + "/"
	err := b.cfg.Store.Update(func(tx *store.Tx) error {
		if err := tx.List(store.BucketConvMessages, func(key string, _ []byte) error {
			if strings.HasPrefix(key, prefix) {
				keys = append(keys, key)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.Delete(store.BucketConvMessages, k); err != nil {
				return err
			}
		}
		for dev, q := range b.outbox {
			keep := q.items[:0:0]
			for _, it := range q.items {
				if it.conv == id {
					if err := tx.Delete(store.BucketConvOutbox, outKey(dev, it.seq)); err != nil {
						return err
					}
					continue
				}
				keep = append(keep, it)
			}
			q.items = keep
		}
		return tx.Delete(store.BucketConversations, convKey(id))
	})
	if err != nil {
		return fmt.Errorf("conversation: forgetting %s: %w", id, err)
	}
	for dev, q := range b.outbox {
		if len(q.items) == 0 {
			delete(b.outbox, dev)
		}
	}
	if c := b.convs[id]; c != nil {
		clear(c.key)
		delete(b.convs, id)
	}
	return nil
}

// SetForgotten marks conversations as archived elsewhere: their envelopes
// are acknowledged and not stored.
func (b *Book) SetForgotten(ids []ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		b.markForgotten(id)
	}
}

// markForgotten records id; b.mu is held.
func (b *Book) markForgotten(id ID) {
	if b.forgotten == nil {
		b.forgotten = map[ID]bool{}
	}
	b.forgotten[id] = true
}
