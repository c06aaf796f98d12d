package archive

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/kith-project/kith/seed"
)

// DefaultMaxRecord bounds one record's data when unpacking a stream, unless
// Unpacker.MaxRecord says otherwise: 1 GiB.
const DefaultMaxRecord = 1 << 30

// Unpacker decodes a pack fed to it in order, in pieces of any size, and
// hands out each record as soon as it is whole, so that a large archive is
// read with one record in memory rather than the whole pack. It accepts
// exactly what Unpack accepts. The zero Unpacker is ready to use.
type Unpacker struct {
	// MaxRecord bounds a record's data: 0 means DefaultMaxRecord. A record
	// claiming more fails with ErrTooLarge before anything is allocated
	// for it.
	MaxRecord int64

	pending []byte // bytes not yet parsed: a header cut across pieces
	started bool   // the pack header has been read
	left    uint32 // records still to come
	seen    map[string]bool
	cur     *Record // the record whose data is being read
	want    uint64  // bytes of cur's data still to come
	err     error   // sticky
}

// Write feeds the next piece of the pack, and calls emit for every record
// that it completes, in order. An error from emit stops the unpacking and
// is returned.
func (u *Unpacker) Write(p []byte, emit func(Record) error) error {
	if u.err != nil {
		return u.err
	}
	u.err = u.write(p, emit)
	return u.err
}

func (u *Unpacker) write(p []byte, emit func(Record) error) error {
	for {
		if u.cur != nil {
			n := min(uint64(len(p)), u.want)
			u.cur.Data = append(u.cur.Data, p[:n]...)
			p = p[n:]
			u.want -= n
			if u.want > 0 {
				return nil
			}
			r := *u.cur
			u.cur = nil
			u.left--
			if err := emit(r); err != nil {
				return err
			}
			continue
		}
		if len(p) == 0 {
			return nil
		}
		// A header, whole in p, or begun in pending (headers are small:
		// at most maxHeader bytes).
		if len(u.pending) == 0 {
			used, err := u.header(p)
			if err != nil {
				return err
			}
			if used == 0 {
				u.pending = append(u.pending, p...) // shorter than maxHeader
				return nil
			}
			p = p[used:]
			continue
		}
		have := len(u.pending)
		buf := append(u.pending, p[:min(len(p), maxHeader-have)]...)
		used, err := u.header(buf)
		if err != nil {
			return err
		}
		if used == 0 {
			u.pending = buf // all of p, still short of a header
			return nil
		}
		p = p[used-have:]
		u.pending = nil
	}
}

// maxHeader is the longest header: a record's, with the longest ID.
const maxHeader = 2 + MaxIDLen + 8

// header parses the pack header or a record header at the start of b, and
// returns how many bytes it used, 0 if more are needed.
func (u *Unpacker) header(b []byte) (int, error) {
	if !u.started {
		if len(b) < packHeader {
			if len(b) > 0 && string(b[:min(len(b), len(packMagic))]) != packMagic[:min(len(b), len(packMagic))] {
				return 0, fmt.Errorf("%w: the history does not start with the pack header", ErrCorrupt)
			}
			return 0, nil
		}
		if string(b[:len(packMagic)]) != packMagic {
			return 0, fmt.Errorf("%w: the history does not start with the pack header", ErrCorrupt)
		}
		if v := b[len(packMagic)]; v != packVersion {
			return 0, fmt.Errorf("%w: pack format version %d, this kith reads version %d: upgrade kith", ErrCorrupt, v, packVersion)
		}
		u.left = binary.BigEndian.Uint32(b[len(packMagic)+1:])
		if u.left > MaxRecords {
			return 0, fmt.Errorf("%w: the pack claims %d records", ErrCorrupt, u.left)
		}
		u.started = true
		u.seen = make(map[string]bool)
		return packHeader, nil
	}
	if u.left == 0 {
		return 0, fmt.Errorf("%w: bytes after the last record", ErrCorrupt)
	}
	if len(b) < 2 {
		return 0, nil
	}
	l := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+l+8 {
		if l == 0 || l > MaxIDLen {
			return 0, fmt.Errorf("%w: a conversation ID of %d bytes", ErrCorrupt, l)
		}
		return 0, nil
	}
	id := string(b[2 : 2+l])
	if err := checkID(id); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if u.seen[id] {
		return 0, fmt.Errorf("%w: conversation %q is given twice", ErrCorrupt, id)
	}
	u.seen[id] = true
	d := binary.BigEndian.Uint64(b[2+l:])
	limit := u.MaxRecord
	if limit <= 0 {
		limit = DefaultMaxRecord
	}
	if d > uint64(limit) {
		return 0, fmt.Errorf("%w: conversation %q claims %d bytes, at most %d in one record", ErrTooLarge, id, d, limit)
	}
	u.cur = &Record{Conversation: id, Data: make([]byte, 0, min(d, 1<<20))}
	u.want = d
	return 2 + l + 8, nil
}

// Close checks that the pack ended exactly after its last record.
func (u *Unpacker) Close() error {
	if u.err != nil {
		return u.err
	}
	if !u.started || u.left != 0 || u.cur != nil || len(u.pending) != 0 {
		u.err = fmt.Errorf("%w: the history is cut short (%d records still to come)", ErrCorrupt, u.left)
		return u.err
	}
	return nil
}

// Fetcher returns a blob's sealed bytes, from this device's store or from
// another holder.
type Fetcher func(ctx context.Context, name BlobName) ([]byte, error)

// OpenStream opens the archive the index entry describes, blob by blob in
// part order, with whichever of keys are the two recipients, and calls emit
// for each record as soon as it is whole. Blobs are fetched and opened on
// up to opts.Workers goroutines, a window of that many parts at a time, so
// memory stays at about Workers blobs plus the record being read. Each blob
// is checked against its name and its place in the archive.
func OpenStream(ctx context.Context, e Entry, fetch Fetcher, keys []seed.ArchiveKey, opts *Options, emit func(Record) error) error {
	n := len(e.Blobs)
	if n == 0 || n > MaxParts {
		return fmt.Errorf("%w: an archive of %d blobs", ErrWrongArchive, n)
	}
	w := opts.workers()
	var u Unpacker
	parts := make([]Part, w)
	for base := 0; base < n; base += w {
		size := min(w, n-base)
		err := parallel(ctx, size, w, func(j int) error {
			i := base + j
			ref := e.Blobs[i]
			data, err := fetch(ctx, ref.Name)
			if err != nil {
				return fmt.Errorf("archive: fetching blob %s: %w", ref.Name.Short(), err)
			}
			if err := CheckBlob(Blob{Name: ref.Name, Data: data}); err != nil {
				return err
			}
			in, err := openLayer(data, keys, "outer layer", MaxBlobSize)
			if err != nil {
				return fmt.Errorf("blob %s: %w", ref.Name.Short(), err)
			}
			plain, err := openLayer(in, keys, "inner layer", MaxBlobSize)
			if err != nil {
				return fmt.Errorf("blob %s: %w", ref.Name.Short(), err)
			}
			p, err := ParsePart(plain)
			if err != nil {
				return fmt.Errorf("blob %s: %w", ref.Name.Short(), err)
			}
			if p.Archive != e.ID || p.Index != i || p.Count != n {
				return fmt.Errorf("%w: blob %s is part %d of %d of archive %s, the index says part %d of %d of %s", ErrWrongArchive, ref.Name.Short(), p.Index, p.Count, p.Archive, i, n, e.ID)
			}
			parts[j] = p
			return nil
		})
		if err != nil {
			return err
		}
		for j := range size {
			if err := u.Write(parts[j].Data, emit); err != nil {
				return err
			}
			parts[j] = Part{}
		}
	}
	return u.Close()
}
