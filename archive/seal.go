package archive

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/kith-project/kith/seed"
)

// Blob is one sealed blob: the outer age file, and its name.
type Blob struct {
	Name BlobName
	Data []byte
}

// Options tune sealing and opening. The zero Options (or nil) is the
// default.
type Options struct {
	// ChunkSize is how many bytes of packed history go in one blob: 0 means
	// DefaultChunkSize, at most MaxChunkSize.
	ChunkSize int
	// Compression is how each chunk is compressed before sealing:
	// CompressFast unless set.
	Compression Compression
	// Workers bounds how many blobs are sealed or opened at once: 0 means
	// runtime.GOMAXPROCS(0).
	Workers int
}

func (o *Options) chunkSize() (int, error) {
	if o == nil || o.ChunkSize == 0 {
		return DefaultChunkSize, nil
	}
	if o.ChunkSize < 0 || o.ChunkSize > MaxChunkSize {
		return 0, fmt.Errorf("archive: a chunk size of %d bytes, want 1 to %d", o.ChunkSize, MaxChunkSize)
	}
	return o.ChunkSize, nil
}

func (o *Options) compression() Compression {
	if o == nil {
		return CompressFast
	}
	return o.Compression
}

func (o *Options) workers() int {
	if o == nil || o.Workers <= 0 {
		return runtime.GOMAXPROCS(0)
	}
	return o.Workers
}

// Sealed is an archive once sealed: its blobs, in part order, and what the
// index says of it.
type Sealed struct {
	// ID is the archive's random ID, written into every part.
	ID ArchiveID
	// Conversations are the IDs of the records, in the order given.
	Conversations []string
	// To are the recipients of the two layers.
	To Recipients
	// Blobs are the sealed blobs, part 0 first.
	Blobs []Blob
	// Size is the packed history's size before compression, in bytes.
	Size int64
}

// Entry returns what the index records of the archive.
func (s *Sealed) Entry() Entry {
	e := Entry{ID: s.ID, Conversations: append([]string(nil), s.Conversations...)}
	for _, b := range s.Blobs {
		e.Blobs = append(e.Blobs, BlobRef{Name: b.Name, Size: int64(len(b.Data)), Inner: s.To.Inner, Outer: s.To.Outer})
	}
	return e
}

// Seal packs records, cuts the pack into chunks, compresses each chunk and
// seals it twice, inner layer to to.Inner and outer layer to to.Outer, on up
// to opts.Workers goroutines that are all done when Seal returns. Every
// blob's plaintext stays below MaxBlobSize. Each blob is named by the
// SHA-256 of its sealed bytes.
func Seal(ctx context.Context, records []Record, to Recipients, opts *Options) (*Sealed, error) {
	if err := to.check(); err != nil {
		return nil, err
	}
	chunk, err := opts.chunkSize()
	if err != nil {
		return nil, err
	}
	segs, size, err := packSegments(records)
	if err != nil {
		return nil, err
	}
	pack := newSegments(segs)
	count := (size + chunk - 1) / chunk
	if count > MaxParts {
		return nil, fmt.Errorf("%w: %d bytes of history make %d parts, at most %d in one archive: archive fewer conversations at once", ErrTooLarge, size, count, MaxParts)
	}
	inner, err := to.Inner.AgeRecipient()
	if err != nil {
		return nil, err
	}
	outer, err := to.Outer.AgeRecipient()
	if err != nil {
		return nil, err
	}
	s := &Sealed{ID: NewArchiveID(), To: to, Blobs: make([]Blob, count), Size: int64(size)}
	for _, r := range records {
		s.Conversations = append(s.Conversations, r.Conversation)
	}
	c := opts.compression()
	err = parallel(ctx, count, opts.workers(), func(i int) error {
		end := min((i+1)*chunk, size)
		head, payload, err := encodePartSplit(s.ID, i, count, pack.slice(i*chunk, end), c)
		if err != nil {
			return err
		}
		in, err := sealLayer(inner, append([][]byte{head}, payload...)...)
		if err != nil {
			return err
		}
		out, err := sealLayer(outer, in)
		if err != nil {
			return err
		}
		s.Blobs[i] = Blob{Name: NameOf(out), Data: out}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Open opens every blob of one archive with both keys, the seed-phrase path
// (or a device that holds both), on up to opts.Workers goroutines, and
// returns the history. Each blob's name is checked against its bytes first.
// The blobs may come in any order; they must be all the archive's parts.
func Open(ctx context.Context, blobs []Blob, outer, inner seed.ArchiveKey, opts *Options) ([]Record, error) {
	if len(blobs) > MaxParts {
		return nil, fmt.Errorf("%w: %d blobs, at most %d in one archive", ErrTooLarge, len(blobs), MaxParts)
	}
	parts := make([]Part, len(blobs))
	err := parallel(ctx, len(blobs), opts.workers(), func(i int) error {
		b := blobs[i]
		if err := CheckBlob(b); err != nil {
			return err
		}
		in, err := PeelOuter(b.Data, outer)
		if err != nil {
			return fmt.Errorf("blob %s: %w", b.Name.Short(), err)
		}
		p, err := OpenInner(in, inner)
		if err != nil {
			return fmt.Errorf("blob %s: %w", b.Name.Short(), err)
		}
		parts[i] = p
		return nil
	})
	if err != nil {
		return nil, err
	}
	return Assemble(parts)
}

// OpenWith opens every blob of one archive with whichever of keys are its
// two recipients: the seed-phrase path after losing every device, where
// the keys are the recovery key and seed.DeriveDevice's archive key for
// each device index the user had.
func OpenWith(ctx context.Context, blobs []Blob, keys []seed.ArchiveKey, opts *Options) ([]Record, error) {
	if len(blobs) > MaxParts {
		return nil, fmt.Errorf("%w: %d blobs, at most %d in one archive", ErrTooLarge, len(blobs), MaxParts)
	}
	parts := make([]Part, len(blobs))
	err := parallel(ctx, len(blobs), opts.workers(), func(i int) error {
		b := blobs[i]
		if err := CheckBlob(b); err != nil {
			return err
		}
		in, err := openLayer(b.Data, keys, "outer layer", MaxBlobSize)
		if err != nil {
			return fmt.Errorf("blob %s: %w", b.Name.Short(), err)
		}
		plain, err := openLayer(in, keys, "inner layer", MaxBlobSize)
		if err != nil {
			return fmt.Errorf("blob %s: %w", b.Name.Short(), err)
		}
		p, err := ParsePart(plain)
		if err != nil {
			return fmt.Errorf("blob %s: %w", b.Name.Short(), err)
		}
		parts[i] = p
		return nil
	})
	if err != nil {
		return nil, err
	}
	return Assemble(parts)
}

// parallel runs f(0) … f(n-1) on at most workers goroutines and returns the
// first error, after every started call has returned. Once a call fails or
// ctx is done, no further call starts.
func parallel(ctx context.Context, n, workers int, f func(i int) error) error {
	workers = max(1, min(workers, n))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  int
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if first != nil || ctx.Err() != nil || next >= n {
			return 0, false
		}
		next++
		return next - 1, true
	}
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
		}
		cancel()
	}
	for range workers {
		wg.Go(func() {
			for {
				i, ok := take()
				if !ok {
					return
				}
				if err := f(i); err != nil {
					fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	if err := ctx.Err(); err != nil && next < n {
		return fmt.Errorf("archive: %w", err)
	}
	return nil
}
