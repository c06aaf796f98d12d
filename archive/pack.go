package archive

import (
	"encoding/binary"
	"fmt"
	"sort"
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
	segs, size, err := packSegments(records)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, size)
	for _, s := range segs {
		b = append(b, s...)
	}
	return b, nil
}

// packSegments returns the pack as a list of slices, the records' Data
// among them uncopied, and its total size.
func packSegments(records []Record) ([][]byte, int, error) {
	if len(records) > MaxRecords {
		return nil, 0, fmt.Errorf("%w: %d records, at most %d in one archive", ErrTooLarge, len(records), MaxRecords)
	}
	size := packHeader
	seen := make(map[string]bool, len(records))
	heads := 0
	for _, r := range records {
		if err := checkID(r.Conversation); err != nil {
			return nil, 0, err
		}
		if seen[r.Conversation] {
			return nil, 0, fmt.Errorf("archive: conversation %q is given twice", r.Conversation)
		}
		seen[r.Conversation] = true
		heads += 2 + len(r.Conversation) + 8
		size += 2 + len(r.Conversation) + 8 + len(r.Data)
	}
	// All the small headers live in one buffer, sliced.
	hb := make([]byte, 0, packHeader+heads)
	hb = append(hb, packMagic...)
	hb = append(hb, packVersion)
	hb = binary.BigEndian.AppendUint32(hb, uint32(len(records)))
	segs := make([][]byte, 0, 1+2*len(records))
	start := 0
	for _, r := range records {
		hb = binary.BigEndian.AppendUint16(hb, uint16(len(r.Conversation)))
		hb = append(hb, r.Conversation...)
		hb = binary.BigEndian.AppendUint64(hb, uint64(len(r.Data)))
		segs = append(segs, hb[start:len(hb):len(hb)])
		start = len(hb)
		if len(r.Data) > 0 {
			segs = append(segs, r.Data)
		}
	}
	if len(records) == 0 {
		segs = append(segs, hb)
	}
	return segs, size, nil
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

// segments is a byte string held as a list of slices.
type segments struct {
	segs   [][]byte
	starts []int // starts[i] is where segs[i] begins
}

func newSegments(segs [][]byte) segments {
	starts := make([]int, len(segs))
	pos := 0
	for i, s := range segs {
		starts[i] = pos
		pos += len(s)
	}
	return segments{segs: segs, starts: starts}
}

// slice returns the bytes from off to end, as slices of the segments.
func (s segments) slice(off, end int) [][]byte {
	// The last segment that starts at or before off.
	i := max(sort.SearchInts(s.starts, off+1)-1, 0)
	var out [][]byte
	for ; i < len(s.segs) && s.starts[i] < end; i++ {
		seg := s.segs[i]
		lo, hi := max(off-s.starts[i], 0), min(end-s.starts[i], len(seg))
		if lo < hi {
			out = append(out, seg[lo:hi])
		}
	}
	return out
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
		if unicode.IsControl(r) {
			return fmt.Errorf("archive: conversation ID %q holds a control character", id)
		}
	}
	return nil
}
