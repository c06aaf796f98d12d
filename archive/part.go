package archive

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Part is one blob's plaintext once both layers are open: a slice of an
// archive's packed history, and where it goes.
type Part struct {
	// Archive is the archive the part belongs to.
	Archive ArchiveID
	// Index is the part's place, 0 to Count-1.
	Index int
	// Count is how many parts the archive has.
	Count int
	// Data is the part's slice of the pack, decompressed.
	Data []byte
}

// Compression chooses how parts are compressed before sealing.
type Compression uint8

const (
	// CompressFast is DEFLATE at its fastest level, the default.
	CompressFast Compression = iota
	// CompressNone stores parts as they are (for data known not to
	// compress).
	CompressNone
	// CompressBest is DEFLATE at its best level: smaller, several times
	// slower.
	CompressBest
)

// Bounds of the part format.
const (
	// DefaultChunkSize is how many bytes of packed history go in one blob
	// unless Options says otherwise: 4 MiB.
	DefaultChunkSize = 4 << 20
	// MaxChunkSize is the largest chunk size: 16 MiB.
	MaxChunkSize = 16 << 20
	// MaxParts is the most parts one archive has.
	MaxParts = 1 << 20
	// MaxBlobSize bounds a sealed blob and each of its layers: a chunk of
	// MaxChunkSize that did not compress, with age's overhead, fits well
	// inside it.
	MaxBlobSize = MaxChunkSize + 1<<20
)

const (
	partMagic   = "kithblob"
	partVersion = 1
	// partHeader is magic, version, method, archive ID, index, count and
	// raw length.
	partHeader = len(partMagic) + 1 + 1 + 16 + 4 + 4 + 4

	methodStored  = 0
	methodDeflate = 1
	// maxInflate bounds DEFLATE's expansion ratio (RFC 1951 allows 258
	// bytes from a code of at least 2 bits: 1032:1).
	maxInflate = 1032
)

// encodePart builds a part's plaintext from its raw chunk.
func encodePart(id ArchiveID, index, count int, chunk []byte, c Compression) ([]byte, error) {
	head, payload, err := encodePartSplit(id, index, count, [][]byte{chunk}, c)
	if err != nil {
		return nil, err
	}
	for _, p := range payload {
		head = append(head, p...)
	}
	return head, nil
}

// encodePartSplit builds a part's plaintext as its header and its payload,
// from the chunk held as slices; a stored payload is those slices, so that
// sealing copies nothing.
func encodePartSplit(id ArchiveID, index, count int, chunk [][]byte, c Compression) (head []byte, payload [][]byte, err error) {
	n := 0
	for _, p := range chunk {
		n += len(p)
	}
	b := make([]byte, partHeader, partHeader+n/2+64)
	copy(b, partMagic)
	b[8] = partVersion
	copy(b[10:26], id[:])
	binary.BigEndian.PutUint32(b[26:], uint32(index))
	binary.BigEndian.PutUint32(b[30:], uint32(count))
	binary.BigEndian.PutUint32(b[34:], uint32(n))
	if c == CompressNone {
		b[9] = methodStored
		return b, chunk, nil
	}
	level := flate.BestSpeed
	if c == CompressBest {
		level = flate.BestCompression
	}
	buf := bytes.NewBuffer(b)
	w, err := flate.NewWriter(buf, level)
	if err != nil {
		return nil, nil, fmt.Errorf("archive: compressing: %w", err)
	}
	for _, p := range chunk {
		if _, err := w.Write(p); err != nil {
			return nil, nil, fmt.Errorf("archive: compressing: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, nil, fmt.Errorf("archive: compressing: %w", err)
	}
	b = buf.Bytes()
	if len(b)-partHeader >= n {
		// It did not compress: store it instead.
		b[9] = methodStored
		return b[:partHeader:partHeader], chunk, nil
	}
	b[9] = methodDeflate
	return b[:partHeader:partHeader], [][]byte{b[partHeader:]}, nil
}

// ParsePart decodes a part's plaintext, the bytes inside the inner layer,
// and decompresses its data, which is at most MaxChunkSize bytes whatever
// the input claims.
func ParsePart(b []byte) (Part, error) {
	if len(b) < partHeader || string(b[:len(partMagic)]) != partMagic {
		return Part{}, fmt.Errorf("%w: the blob's content does not start with the part header", ErrCorrupt)
	}
	if b[8] != partVersion {
		return Part{}, fmt.Errorf("%w: part format version %d, this kith reads version %d: upgrade kith", ErrCorrupt, b[8], partVersion)
	}
	var p Part
	copy(p.Archive[:], b[10:26])
	index := binary.BigEndian.Uint32(b[26:])
	count := binary.BigEndian.Uint32(b[30:])
	raw := binary.BigEndian.Uint32(b[34:])
	if count == 0 || count > MaxParts || index >= count {
		return Part{}, fmt.Errorf("%w: part %d of %d", ErrCorrupt, index, count)
	}
	if raw > MaxChunkSize {
		return Part{}, fmt.Errorf("%w: a part of %d bytes, at most %d", ErrCorrupt, raw, MaxChunkSize)
	}
	p.Index, p.Count = int(index), int(count)
	payload := b[partHeader:]
	switch b[9] {
	case methodStored:
		if uint32(len(payload)) != raw {
			return Part{}, fmt.Errorf("%w: part holds %d bytes, its header says %d", ErrCorrupt, len(payload), raw)
		}
		p.Data = payload
	case methodDeflate:
		// DEFLATE expands at most about 1032:1; a header claiming more is
		// refused before its buffer is allocated.
		if uint64(raw) > uint64(len(payload))*maxInflate+1024 {
			return Part{}, fmt.Errorf("%w: %d compressed bytes cannot hold the %d the header says", ErrCorrupt, len(payload), raw)
		}
		r := flate.NewReader(bytes.NewReader(payload))
		data := make([]byte, raw)
		if _, err := io.ReadFull(r, data); err != nil {
			return Part{}, fmt.Errorf("%w: decompressing the part: %w", ErrCorrupt, err)
		}
		// The stream must end exactly there, with nothing after it.
		var one [1]byte
		if n, err := r.Read(one[:]); n != 0 || !errors.Is(err, io.EOF) {
			return Part{}, fmt.Errorf("%w: the part decompresses to more than its header says", ErrCorrupt)
		}
		p.Data = data
	default:
		return Part{}, fmt.Errorf("%w: unknown compression method %d", ErrCorrupt, b[9])
	}
	return p, nil
}

// Assemble puts the parts of one archive back together, in any order, and
// unpacks the history. It fails with ErrWrongArchive unless the parts are
// exactly parts 0 to Count-1 of one archive.
func Assemble(parts []Part) ([]Record, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: no parts", ErrWrongArchive)
	}
	id, count := parts[0].Archive, parts[0].Count
	if len(parts) != count {
		return nil, fmt.Errorf("%w: %d parts given, the archive has %d", ErrWrongArchive, len(parts), count)
	}
	ordered := make([][]byte, count)
	seen := make([]bool, count)
	size := 0
	for _, p := range parts {
		if p.Archive != id || p.Count != count {
			return nil, fmt.Errorf("%w: part %d is from archive %s, part 0 from %s", ErrWrongArchive, p.Index, p.Archive, id)
		}
		if p.Index < 0 || p.Index >= count || seen[p.Index] {
			return nil, fmt.Errorf("%w: part %d is given twice or out of range", ErrWrongArchive, p.Index)
		}
		seen[p.Index] = true
		ordered[p.Index] = p.Data
		size += len(p.Data)
	}
	if count == 1 {
		return Unpack(ordered[0])
	}
	pack := make([]byte, 0, size)
	for _, d := range ordered {
		pack = append(pack, d...)
	}
	return Unpack(pack)
}
