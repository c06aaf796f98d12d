package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/kith-project/kith/archive"
	"github.com/kith-project/kith/archive/disk"
	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// archiveStreamTimeout bounds one exchange of stream 0x08: a blob of up to
// 17 MiB, on a slow link.
const archiveStreamTimeout = 60 * time.Second

// serve answers one request of stream 0x08 (archive_wire.go).
func (ar *archiver) serve(ctx context.Context, s *transport.Stream) {
	p, ok := ar.a.book.peerForKey(s.Conn().PeerKey())
	if !ok {
		s.Reset(errResetStream)
		return
	}
	f, payload, err := readArFrame(s, nil)
	if err == nil && !isArRequest(f.Type) {
		err = fmt.Errorf("%w: a request of type %#02x", errArFrame, f.Type)
	}
	if err == nil {
		// The opener closes its side after its request: wait for that, so
		// that answering (and closing) cannot race its close.
		var one [1]byte
		if n, rerr := s.Read(one[:]); n > 0 || !errors.Is(rerr, io.EOF) {
			err = fmt.Errorf("%w: bytes after the request", errArFrame)
		}
	}
	if err != nil {
		ar.a.log.Debug("archive stream refused", "peer", p.DeviceID.Short(), "err", err)
		s.Reset(errResetStream)
		return
	}
	ans, data := ar.answer(p, f, payload)
	if err := writeArFrame(s, ans, data); err != nil {
		return
	}
	s.Close()
}

func arRefuse(code byte, format string, args ...any) arFrame {
	return arFrame{Type: arRefused, Code: code, Reason: fmt.Sprintf(format, args...)}
}

// ownerOf is whose blobs a peer's requests are about: this user's for an
// own device, the friend's own for a friend's device.
func (ar *archiver) ownerOf(p Peer) seed.UserPublic {
	if p.Kind == roster.KindOwn {
		return ar.a.dev.Cert.User
	}
	return p.UserID
}

// namesFor returns the names of the blobs held for owner.
func (ar *archiver) namesFor(owner seed.UserPublic) []archive.BlobName {
	var out []archive.BlobName
	for _, in := range ar.blobs.List() {
		if in.Owner.Equal(owner) {
			out = append(out, in.Name)
		}
	}
	return archive.SortNames(out)
}

// heldFor returns the set of blobs held for owner.
func (ar *archiver) heldFor(owner seed.UserPublic) map[archive.BlobName]bool {
	out := map[archive.BlobName]bool{}
	for _, in := range ar.blobs.List() {
		if in.Owner.Equal(owner) {
			out[in.Name] = true
		}
	}
	return out
}

// holdsFor reports whether the blob is held for owner.
func (ar *archiver) holdsFor(owner seed.UserPublic, n archive.BlobName) bool {
	for _, in := range ar.blobs.List() {
		if in.Name == n && in.Owner.Equal(owner) {
			return true
		}
	}
	return false
}

// answer acts on one request from peer p.
func (ar *archiver) answer(p Peer, f arFrame, payload []byte) (arFrame, []byte) {
	owner := ar.ownerOf(p)
	own := p.Kind == roster.KindOwn
	switch f.Type {
	case arPut:
		if !f.Owner.Equal(owner) {
			return arRefuse(arCodeDenied, "a device holds only its own user's blobs here"), nil
		}
		if !own {
			ar.mu.Lock()
			q := ar.quota
			ar.mu.Unlock()
			ar.blobs.SetQuota(owner, q)
		}
		err := ar.blobs.Put(owner, f.Name, payload)
		var qe *disk.QuotaError
		switch {
		case errors.As(err, &qe):
			return arRefuse(arCodeQuota, "archive quota full on this relay: %d of %d bytes used, the blob has %d", qe.Used, qe.Quota, qe.Size), nil
		case errors.Is(err, archive.ErrNameMismatch):
			return arRefuse(arCodeBad, "the blob does not match its name"), nil
		case err != nil:
			ar.a.log.Warn("storing a blob", "err", err)
			return arRefuse(arCodeFailed, "the blob could not be stored"), nil
		}
		return arFrame{Type: arOK}, nil
	case arGet:
		if !ar.holdsFor(owner, f.Name) {
			return arRefuse(arCodeMissing, "no such blob here"), nil
		}
		b, err := ar.blobs.Get(f.Name)
		if err != nil {
			ar.a.log.Warn("reading a blob for a peer", "blob", f.Name.Short(), "err", err)
			return arRefuse(arCodeMissing, "the blob is damaged here"), nil
		}
		return arFrame{Type: arData, Size: int64(len(b))}, b
	case arHas:
		return arFrame{Type: arHasIs, Has: ar.holdsFor(owner, f.Name)}, nil
	case arRoot:
		return arFrame{Type: arRootIs, Root: archive.MerkleRoot(ar.namesFor(owner))}, nil
	case arBuckets:
		roots, err := archive.BucketRoots(ar.namesFor(owner), f.Bits)
		if err != nil {
			return arRefuse(arCodeBad, "%v", err), nil
		}
		return arFrame{Type: arRoots, Roots: roots, Bits: f.Bits}, nil
	case arNames:
		names := ar.namesFor(owner)
		if len(f.Buckets) > 0 {
			names = archive.NamesInBuckets(names, f.Bits, f.Buckets)
		}
		if len(names) > maxArNames {
			return arRefuse(arCodeBad, "%d names: ask for fewer buckets", len(names)), nil
		}
		return arFrame{Type: arNameIs, Names: names}, nil
	case arPeel:
		if !own {
			return arRefuse(arCodeDenied, "only the user's own devices peel layers"), nil
		}
		inner, err := archive.PeelOuter(payload, ar.a.dev.Archive)
		if errors.Is(err, archive.ErrWrongKey) {
			return arRefuse(arCodeKey, "this device's key is not the outer recipient"), nil
		}
		if err != nil {
			return arRefuse(arCodeBad, "%v", err), nil
		}
		return arFrame{Type: arData, Size: int64(len(inner))}, inner
	case arOpen:
		if !own {
			return arRefuse(arCodeDenied, "only the user's own devices open layers"), nil
		}
		part, err := archive.OpenInner(payload, ar.a.dev.Archive)
		if errors.Is(err, archive.ErrWrongKey) {
			return arRefuse(arCodeKey, "this device's key is not the inner recipient"), nil
		}
		if err != nil {
			return arRefuse(arCodeBad, "%v", err), nil
		}
		b := encodePart(part)
		return arFrame{Type: arData, Size: int64(len(b))}, b
	case arPeelN:
		if !own {
			return arRefuse(arCodeDenied, "only the user's own devices peel layers"), nil
		}
		if !ar.holdsFor(owner, f.Name) {
			return arRefuse(arCodeMissing, "no such blob here"), nil
		}
		blob, err := ar.blobs.Get(f.Name)
		if err != nil {
			return arRefuse(arCodeMissing, "the blob is damaged here"), nil
		}
		inner, err := archive.PeelOuter(blob, ar.a.dev.Archive)
		if errors.Is(err, archive.ErrWrongKey) {
			return arRefuse(arCodeKey, "this device's key is not the outer recipient"), nil
		}
		if err != nil {
			return arRefuse(arCodeBad, "%v", err), nil
		}
		return arFrame{Type: arData, Size: int64(len(inner))}, inner
	case arDelete:
		if own {
			return arRefuse(arCodeDenied, "own devices delete only from their own folders"), nil
		}
		if !f.Owner.Equal(owner) {
			return arRefuse(arCodeDenied, "a device deletes only its own user's blobs here"), nil
		}
		held := ar.heldFor(owner)
		n := 0
		for _, name := range f.Names {
			if !held[name] {
				continue // gone already: deleting is idempotent
			}
			if err := ar.blobs.Delete(owner, name); err != nil {
				ar.a.log.Warn("deleting a blob for a friend", "friend", owner.Short(), "err", err)
				return arRefuse(arCodeFailed, "the blob could not be deleted"), nil
			}
			n++
		}
		if n > 0 {
			ar.a.log.Info("deleted blobs a friend no longer needs", "friend", owner.Short(), "blobs", n)
		}
		return arFrame{Type: arOK}, nil
	case arPlace:
		if !own {
			return arRefuse(arCodeDenied, "placement is for own devices"), nil
		}
		b, err := json.Marshal(ar.placementDoc())
		if err != nil || len(b) > int(maxPayload(arData)) {
			return arRefuse(arCodeFailed, "the placement could not be sent"), nil
		}
		return arFrame{Type: arData, Size: int64(len(b))}, b
	}
	return arRefuse(arCodeBad, "unknown request"), nil
}

// arRefusal is a peer's refusal, as an error.
type arRefusal struct {
	Code   byte
	Reason string
}

func (e *arRefusal) Error() string { return "refused: " + e.Reason }

// ask sends one request to device d and returns its answer and payload.
// progress, if set, is told of the answer's bytes as they arrive.
func (ar *archiver) ask(ctx context.Context, d seed.DevicePublic, f arFrame, payload []byte, progress func(int)) (arFrame, []byte, error) {
	p, ok := ar.a.book.peerFor(d)
	if !ok {
		return arFrame{}, nil, fmt.Errorf("device %s is not known here", d.Short())
	}
	addr, err := netip.ParseAddrPort(p.Addr)
	if err != nil {
		return arFrame{}, nil, fmt.Errorf("no address for %s", d.Short())
	}
	ctx, cancel := context.WithTimeout(ctx, archiveStreamTimeout)
	defer cancel()
	s, err := ar.a.tr.OpenStream(ctx, addr, d.Ed25519(), protoArchive)
	if err != nil {
		return arFrame{}, nil, err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	if err := writeArFrame(s, f, payload); err != nil {
		return arFrame{}, nil, err
	}
	if err := s.CloseWrite(); err != nil {
		return arFrame{}, nil, err
	}
	ans, data, err := readArFrame(s, progress)
	if err != nil {
		return arFrame{}, nil, fmt.Errorf("reading the answer of %s: %w", d.Short(), err)
	}
	if isArRequest(ans.Type) {
		return arFrame{}, nil, fmt.Errorf("%s answered with a request", d.Short())
	}
	if ans.Type == arRefused {
		return ans, nil, &arRefusal{Code: ans.Code, Reason: ans.Reason}
	}
	return ans, data, nil
}

// fetchFrom gets blob n from device d and checks it against its name.
func (ar *archiver) fetchFrom(ctx context.Context, d seed.DevicePublic, n archive.BlobName, progress func(int)) ([]byte, error) {
	ans, data, err := ar.ask(ctx, d, arFrame{Type: arGet, Name: n}, nil, progress)
	if err != nil {
		return nil, err
	}
	if ans.Type != arData {
		return nil, fmt.Errorf("%s answered %#02x to get", d.Short(), ans.Type)
	}
	if err := archive.CheckBlob(archive.Blob{Name: n, Data: data}); err != nil {
		return nil, fmt.Errorf("blob %s from %s: %w", n.Short(), d.Short(), err)
	}
	return data, nil
}

// putTo hands blob n of this user to device d.
func (ar *archiver) putTo(ctx context.Context, d seed.DevicePublic, n archive.BlobName, data []byte) error {
	ans, _, err := ar.ask(ctx, d, arFrame{Type: arPut, Owner: ar.a.dev.Cert.User, Name: n, Size: int64(len(data))}, data, nil)
	if err != nil {
		return err
	}
	if ans.Type != arOK {
		return fmt.Errorf("%s answered %#02x to put", d.Short(), ans.Type)
	}
	return nil
}

// deleteAt asks friend device d to delete the blobs names, which it
// holds for this user (at most maxArDelete).
func (ar *archiver) deleteAt(ctx context.Context, d seed.DevicePublic, names []archive.BlobName) error {
	ans, _, err := ar.ask(ctx, d, arFrame{Type: arDelete, Owner: ar.a.dev.Cert.User, Names: names}, nil, nil)
	if err != nil {
		return err
	}
	if ans.Type != arOK {
		return fmt.Errorf("%s answered %#02x to delete", d.Short(), ans.Type)
	}
	return nil
}

// peelAt asks own device d to peel a blob's outer layer.
func (ar *archiver) peelAt(ctx context.Context, d seed.DevicePublic, blob []byte) ([]byte, error) {
	ans, data, err := ar.ask(ctx, d, arFrame{Type: arPeel, Size: int64(len(blob))}, blob, nil)
	if err != nil {
		return nil, err
	}
	if ans.Type != arData {
		return nil, fmt.Errorf("%s answered %#02x to peel", d.Short(), ans.Type)
	}
	return data, nil
}

// openAt asks own device d to open an inner layer.
func (ar *archiver) openAt(ctx context.Context, d seed.DevicePublic, inner []byte) (archive.Part, error) {
	ans, data, err := ar.ask(ctx, d, arFrame{Type: arOpen, Size: int64(len(inner))}, inner, nil)
	if err != nil {
		return archive.Part{}, err
	}
	if ans.Type != arData {
		return archive.Part{}, fmt.Errorf("%s answered %#02x to open", d.Short(), ans.Type)
	}
	return decodePart(data)
}

// peelNameAt asks own device d to peel the outer layer of blob n, which d
// holds: the blob itself need not travel.
func (ar *archiver) peelNameAt(ctx context.Context, d seed.DevicePublic, n archive.BlobName, progress func(int)) ([]byte, error) {
	ans, data, err := ar.ask(ctx, d, arFrame{Type: arPeelN, Name: n}, nil, progress)
	if err != nil {
		return nil, err
	}
	if ans.Type != arData {
		return nil, fmt.Errorf("%s answered %#02x to peel", d.Short(), ans.Type)
	}
	return data, nil
}
