package archive

import (
	"encoding/binary"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Record is one conversation's history, as the caller serialized it. The
// archive keeps Data as opaque bytes.
type Record struct {
	// Conversation is the conversation's ID: 1 to MaxIDLen bytes of UTF-8
	// with no control characters.
	Conversation string
	// Data is the conversation's serialized history.
	Data []byte
}

// Bounds of the pack format.
const (
	// MaxIDLen is the longest conversation ID, in bytes.
	MaxIDLen = 256
	// MaxRecords is the most records one archive holds.
	MaxRecords = 1 << 20
)

const (
	packMagic   = "kithpack"
	packVersion = 1
	// packHeader is magic, version and record count.
	packHeader = len(packMagic) + 1 + 4
	// recordHeader is the smallest record: ID length, one byte of ID, data
	// length.
	recordMin = 2 + 1 + 8
)

// Pack serializes records in the pack format (see the package doc),
// version 1. It fails on an ID that is empty, too long, not UTF-8 or holds
// a control character, on more than MaxRecords records, or on two records
// with the same ID.
func Pack(records []Record) ([]byte, error) {
	if len(records) > MaxRecords {
		return nil, fmt.Errorf("%w: %d records, at most %d in one archive", ErrTooLarge, len(records), MaxRecords)
	}
	size := packHeader
	seen := make(map[string]bool, len(records))
	for _, r := range records {
		if err := checkID(r.Conversation); err != nil {
			return nil, err
		}
		if seen[r.Conversation] {
			return nil, fmt.Errorf("archive: conversation %q is given twice", r.Conversation)
		}
		seen[r.Conversation] = true
		size += 2 + len(r.Conversation) + 8 + len(r.Data)
	}
	b := make([]byte, 0, size)
	b = append(b, packMagic...)
	b = append(b, packVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(records)))
	for _, r := range records {
		b = binary.BigEndian.AppendUint16(b, uint16(len(r.Conversation)))
		b = append(b, r.Conversation...)
		b = binary.BigEndian.AppendUint64(b, uint64(len(r.Data)))
		b = append(b, r.Data...)
	}
	return b, nil
}

// Unpack parses the pack format. The records' Data alias b. Every length is
// checked against what is left of b before anything is allocated, so memory
// stays bounded by len(b).
func Unpack(b []byte) ([]Record, error) {
	if len(b) < packHeader || string(b[:len(packMagic)]) != packMagic {
		return nil, fmt.Errorf("%w: the history does not start with the pack header", ErrCorrupt)
	}
	if v := b[len(packMagic)]; v != packVersion {
		return nil, fmt.Errorf("%w: pack format version %d, this kith reads version %d: upgrade kith", ErrCorrupt, v, packVersion)
	}
	n := binary.BigEndian.Uint32(b[len(packMagic)+1:])
	rest := b[packHeader:]
	if n > MaxRecords || uint64(n) > uint64(len(rest)/recordMin) {
		return nil, fmt.Errorf("%w: the pack claims %d records in %d bytes", ErrCorrupt, n, len(rest))
	}
	records := make([]Record, 0, n)
	seen := make(map[string]bool, n)
	for i := range n {
		if len(rest) < 2 {
			return nil, fmt.Errorf("%w: record %d is cut short", ErrCorrupt, i)
		}
		l := int(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		if l > len(rest) {
			return nil, fmt.Errorf("%w: record %d's ID is cut short", ErrCorrupt, i)
		}
		id := string(rest[:l])
		rest = rest[l:]
		if err := checkID(id); err != nil {
			return nil, fmt.Errorf("%w: record %d: %w", ErrCorrupt, i, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("%w: record %d repeats conversation %q", ErrCorrupt, i, id)
		}
		seen[id] = true
		if len(rest) < 8 {
			return nil, fmt.Errorf("%w: record %d is cut short", ErrCorrupt, i)
		}
		d := binary.BigEndian.Uint64(rest)
		rest = rest[8:]
		if d > uint64(len(rest)) {
			return nil, fmt.Errorf("%w: record %d claims %d bytes, %d are left", ErrCorrupt, i, d, len(rest))
		}
		records = append(records, Record{Conversation: id, Data: rest[:d:d]})
		rest = rest[d:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last record", ErrCorrupt, len(rest))
	}
	return records, nil
}

// checkID checks a conversation ID.
func checkID(id string) error {
	if id == "" || len(id) > MaxIDLen {
		return fmt.Errorf("archive: a conversation ID is 1 to %d bytes, not %d", MaxIDLen, len(id))
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("archive: conversation ID %q is not UTF-8", id)
	}
	for _, r := range id {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return fmt.Errorf("archive: conversation ID %q holds a control character", id)
		}
	}
	return nil
}
