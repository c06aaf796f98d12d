package disk

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kith-project/kith/archive"
	"github.com/kith-project/kith/seed"
)

var (
	self   = seed.UserPublic{1}
	friend = seed.UserPublic{2}
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func blob(n int) ([]byte, archive.BlobName) {
	b := make([]byte, n)
	rand.Read(b)
	return b, archive.NameOf(b)
}

// open opens the store with Verify: these tests check what a full scan
// finds (TestOpenLazyThenVerify checks the lazy Open).
func open(t *testing.T, dir string, opts Options) (*Store, Report) {
	t.Helper()
	opts.Logger, opts.Verify = quiet(), true
	s, rep, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, rep
}

func TestPutGetListReopen(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, Options{Self: self})
	b1, n1 := blob(1000)
	b2, n2 := blob(2000)
	if err := s.Put(self, n1, b1); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(friend, n2, b2); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(friend, n2, b2); err != nil { // again: nothing happens
		t.Fatal(err)
	}
	if !s.Has(n1) || !s.Has(n2) {
		t.Fatal("Has is false for a blob put")
	}
	got, err := s.Get(n2)
	if err != nil || !bytes.Equal(got, b2) {
		t.Fatal("Get returned other bytes", err)
	}
	if used, q := s.Usage(friend); used != 2000 || q != DefaultQuota {
		t.Fatalf("friend's usage %d of %d", used, q)
	}
	if used, q := s.Usage(self); used != 1000 || q != -1 {
		t.Fatalf("own usage %d of %d", used, q)
	}
	fi, err := os.Stat(filepath.Join(dir, friend.ID(), n2.String()))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("blob file %v, mode %v", err, fi.Mode())
	}

	s2, rep := open(t, dir, Options{Self: self})
	if rep.Blobs != 2 || rep.Bytes != 3000 || len(rep.Damaged)+len(rep.Leftovers) != 0 {
		t.Fatalf("report on reopening %+v", rep)
	}
	list := s2.List()
	if len(list) != 2 {
		t.Fatalf("List %+v", list)
	}
	for _, in := range list {
		if (in.Name == n1 && (in.Owner != self || in.Size != 1000)) || (in.Name == n2 && (in.Owner != friend || in.Size != 2000)) {
			t.Fatalf("List entry %+v", in)
		}
	}
	if got := archive.MerkleRoot(s2.Names()); !got.Equal(archive.MerkleRoot([]archive.BlobName{n2, n1})) {
		t.Fatal("Names do not give the root of the blobs held")
	}
	if err := s2.Delete(friend, n2); err != nil {
		t.Fatal(err)
	}
	if s2.Has(n2) {
		t.Fatal("deleted blob still present")
	}
	if _, err := s2.Get(n2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a deleted blob: %v", err)
	}
	if used, _ := s2.Usage(friend); used != 0 {
		t.Fatalf("friend's usage %d after delete", used)
	}
}

func TestPutChecksName(t *testing.T) {
	s, _ := open(t, t.TempDir(), Options{Self: self})
	b, _ := blob(100)
	_, other := blob(100)
	if err := s.Put(self, other, b); !errors.Is(err, archive.ErrNameMismatch) {
		t.Fatalf("Put under another name: %v", err)
	}
	if s.Has(other) {
		t.Fatal("a refused blob is present")
	}
}

func TestQuota(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, Options{Self: self, Quota: 2500})
	for range 2 {
		b, n := blob(1000)
		if err := s.Put(friend, n, b); err != nil {
			t.Fatal(err)
		}
	}
	b, n := blob(1000)
	err := s.Put(friend, n, b)
	var qe *QuotaError
	if !errors.Is(err, ErrQuota) || !errors.As(err, &qe) {
		t.Fatalf("Put past the quota: %v", err)
	}
	if qe.Used != 2000 || qe.Quota != 2500 || qe.Size != 1000 || !strings.Contains(err.Error(), "2000 B") && !strings.Contains(err.Error(), "2.0 KiB") {
		t.Fatalf("quota error %+v: %v", qe, err)
	}
	if !strings.Contains(err.Error(), "kith archive quota") {
		t.Fatalf("quota error does not say what to do: %v", err)
	}
	// Own blobs have no quota; raising the friend's quota lets it in.
	if err := s.Put(self, n, b); err != nil {
		t.Fatal(err)
	}
	s.SetQuota(friend, 3000)
	if err := s.Put(friend, n, b); err != nil {
		t.Fatal(err)
	}
	s.SetQuota(friend, -1)
	b4, n4 := blob(1)
	if err := s.Put(friend, n4, b4); !errors.Is(err, ErrQuota) {
		t.Fatalf("Put with no quota: %v", err)
	}
	// Usage survives reopening.
	s2, _ := open(t, dir, Options{Self: self, Quota: 2500})
	if used, q := s2.Usage(friend); used != 3000 || q != 2500 {
		t.Fatalf("usage after reopening %d of %d", used, q)
	}
}

// damagedFolder is a store folder in dir holding one good blob, put
// through the store, beside a partial file and a flipped one under blob
// names, as a crash or a bad disk leaves them; it returns the good blob and
// the three names.
func damagedFolder(t *testing.T, dir string) (good []byte, gn, pn, fn archive.BlobName) {
	t.Helper()
	s, _ := open(t, dir, Options{Self: self})
	good, gn = blob(5000)
	if err := s.Put(self, gn, good); err != nil {
		t.Fatal(err)
	}
	odir := filepath.Join(dir, self.ID())
	partial, pn := blob(5000)
	if err := os.WriteFile(filepath.Join(odir, pn.String()), partial[:2000], 0o600); err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[100] ^= 1
	fn = archive.NameOf(bytes.Repeat([]byte{3}, 10))
	if err := os.WriteFile(filepath.Join(odir, fn.String()), flipped, 0o600); err != nil {
		t.Fatal(err)
	}
	return good, gn, pn, fn
}

// TestCrashLeftovers: a kill mid-write leaves a temporary file, or (by a
// writer that is not atomic, or a damaged disk) a partial file under a
// blob's name; neither counts.
func TestCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	_, gn, pn, fn := damagedFolder(t, dir)
	odir := filepath.Join(dir, self.ID())
	if err := os.WriteFile(filepath.Join(odir, tmpPrefix+"deadbeef"), make([]byte, 3000), 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "README"), []byte("not a blob"), 0o600)

	s2, rep := open(t, dir, Options{Self: self})
	if rep.Blobs != 1 || len(rep.Leftovers) != 1 || len(rep.Damaged) != 2 || len(rep.Unknown) != 1 {
		t.Fatalf("report %+v", rep)
	}
	if s2.Has(pn) || s2.Has(fn) || !s2.Has(gn) {
		t.Fatal("a partial or damaged blob counts as present")
	}
	entries, _ := os.ReadDir(odir)
	if len(entries) != 1 {
		t.Fatalf("%d files left in the owner folder, want the one good blob", len(entries))
	}
}

// TestGetDetectsDamage: a blob damaged after Open is caught by Get, removed
// and no longer counted.
func TestGetDetectsDamage(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, Options{Self: self})
	b, n := blob(3000)
	if err := s.Put(self, n, b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, self.ID(), n.String())
	bad := bytes.Clone(b)
	bad[7] ^= 0x80
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(n); !errors.Is(err, archive.ErrNameMismatch) {
		t.Fatalf("Get of a damaged blob: %v", err)
	}
	if s.Has(n) {
		t.Fatal("a damaged blob still counts")
	}
	if err := s.Put(self, n, b); err != nil { // healed from another replica
		t.Fatal(err)
	}
	if got, err := s.Get(n); err != nil || !bytes.Equal(got, b) {
		t.Fatal("healed blob does not read back", err)
	}
}

const helperEnv = "KITH_DISK_STORE_KILL_HELPER"

// TestMain runs the child of TestKilledWriter when the environment asks for
// it: a process that puts blobs until it is killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		s, _, err := Open(dir, Options{Self: self, Logger: quiet()})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for i := 0; ; i++ {
			b, n := blob(256<<10 + i)
			if err := s.Put(self, n, b); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	}
	os.Exit(m.Run())
}

// TestKilledWriter kills a process with SIGKILL while it writes blobs, then
// reopens the store: every blob counted is whole.
func TestKilledWriter(t *testing.T) {
	dir := t.TempDir()
	for round := range 3 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until it has written a few more blobs, however slow the
		// machine is.
		odir := filepath.Join(dir, self.ID())
		want := 3 * (round + 1)
		deadline := time.Now().Add(60 * time.Second)
		for {
			entries, _ := os.ReadDir(odir)
			if len(entries) >= want {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("the helper wrote %d files in 60 s", len(entries))
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()

		s, rep := open(t, dir, Options{Self: self})
		if len(rep.Damaged) != 0 {
			t.Fatalf("round %d: damaged blobs after a kill: %+v", round, rep.Damaged)
		}
		for _, in := range s.List() {
			if _, err := s.Get(in.Name); err != nil {
				t.Fatalf("round %d: blob %s counted but unreadable: %v", round, in.Name.Short(), err)
			}
		}
		entries, _ := os.ReadDir(odir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				t.Fatalf("round %d: leftover %s after reopening", round, e.Name())
			}
		}
		t.Logf("round %d: %d blobs, %d leftovers removed", round, rep.Blobs, len(rep.Leftovers))
	}
}

func TestQuotaErrorText(t *testing.T) {
	e := &QuotaError{Owner: friend, Used: 900 << 20, Quota: 1 << 30, Size: 4 << 20}
	want := fmt.Sprintf("the relay quota for user %s is full: 900.0 MiB of 1.0 GiB used, a blob of 4.0 MiB does not fit", friend.Short())
	if !strings.Contains(e.Error(), want) {
		t.Fatalf("%q does not contain %q", e.Error(), want)
	}
}

// TestConcurrentPuts: puts from many goroutines, some of the same blob,
// stay within the quota and count each blob once.
func TestConcurrentPuts(t *testing.T) {
	s, _ := open(t, t.TempDir(), Options{Self: self, Quota: 10 * 1000})
	type item struct {
		b []byte
		n archive.BlobName
	}
	var items []item
	for range 20 {
		b, n := blob(1000)
		items = append(items, item{b, n})
	}
	errs := make(chan error, 40)
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range items {
				it := items[(i+g*5)%len(items)]
				errs <- s.Put(friend, it.n, it.b)
			}
		}()
	}
	refused := 0
	go func() {
		for range 4 {
			<-done
		}
		close(errs)
	}()
	for err := range errs {
		if errors.Is(err, ErrQuota) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	used, _ := s.Usage(friend)
	if used != 10*1000 || len(s.List()) != 10 || refused == 0 {
		t.Fatalf("used %d, %d blobs, %d refusals; want 10000, 10, some", used, len(s.List()), refused)
	}
}

// TestSealToStoreOpenStream is the agent's path end to end, without the
// network: SealTo puts each blob into the store as it is made, OpenStream
// reads them back through Get.
func TestSealToStoreOpenStream(t *testing.T) {
	phrase := bytes.Repeat([]byte{5}, seed.SeedSize)
	_, a, _ := seed.DeriveDevice(phrase, 0)
	recovery, _ := seed.DeriveRecoveryArchive(phrase)
	s, _ := open(t, t.TempDir(), Options{Self: self})
	var recs []archive.Record
	for i := range 12 {
		recs = append(recs, archive.Record{Conversation: fmt.Sprintf("c%d", i), Data: bytes.Repeat([]byte{byte(i)}, 30_000+i)})
	}
	ctx := t.Context()
	opts := &archive.Options{ChunkSize: 50_000, Workers: 2, Compression: archive.CompressNone}
	to := archive.RecipientsFor(a.Recipient(), nil, recovery.Recipient(), 0)
	sealed, err := archive.SealTo(ctx, recs, to, opts, func(_ context.Context, b archive.Blob) error {
		return s.Put(self, b.Name, b.Data)
	})
	if err != nil {
		t.Fatal(err)
	}
	e := sealed.Entry()
	if len(e.Blobs) != 8 || len(s.List()) != 8 || len(sealed.Blobs) != 0 {
		t.Fatalf("%d blobs in the entry, %d in the store, %d kept; want 8, 8, 0", len(e.Blobs), len(s.List()), len(sealed.Blobs))
	}
	fetch := func(_ context.Context, n archive.BlobName) ([]byte, error) { return s.Get(n) }
	var got []archive.Record
	err = archive.OpenStream(ctx, e, fetch, []seed.ArchiveKey{a, recovery}, opts, func(r archive.Record) error {
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("%d records back, want %d", len(got), len(recs))
	}
	for i := range recs {
		if got[i].Conversation != recs[i].Conversation || !bytes.Equal(got[i].Data, recs[i].Data) {
			t.Fatalf("record %d differs", i)
		}
	}
	// A put that fails stops the sealing with its error.
	full := errors.New("disk full")
	if _, err := archive.SealTo(ctx, recs, to, opts, func(context.Context, archive.Blob) error { return full }); !errors.Is(err, full) {
		t.Fatalf("SealTo with a failing put: %v", err)
	}
}

// Without Options.Verify, Open reads no blob: it lists the folder and
// checks sizes only, so an empty file is caught but a partial or flipped
// one counts until Verify (or Get) reads it. Verify then removes those and
// leaves the good blob; a cancelled Verify stops with the context's error.
func TestOpenLazyThenVerify(t *testing.T) {
	dir := t.TempDir()
	good, gn, pn, fn := damagedFolder(t, dir)
	odir := filepath.Join(dir, self.ID())
	en := archive.NameOf([]byte("empty"))
	if err := os.WriteFile(filepath.Join(odir, en.String()), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	lazy, rep, err := Open(dir, Options{Self: self, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blobs != 3 || len(rep.Damaged) != 1 || !lazy.Has(pn) || !lazy.Has(fn) || lazy.Has(en) {
		t.Fatalf("a lazy Open: report %+v; has partial %v, flipped %v, empty %v", rep, lazy.Has(pn), lazy.Has(fn), lazy.Has(en))
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := lazy.Verify(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify with a cancelled context: %v", err)
	}
	damaged, err := lazy.Verify(context.Background())
	if err != nil || len(damaged) != 2 {
		t.Fatalf("Verify: %+v, %v", damaged, err)
	}
	if lazy.Has(pn) || lazy.Has(fn) || !lazy.Has(gn) {
		t.Fatal("after Verify a partial or damaged blob counts as present, or the good one does not")
	}
	if b, err := lazy.Get(gn); err != nil || !bytes.Equal(b, good) {
		t.Fatalf("Get of the good blob after Verify: %v", err)
	}
	if entries, _ := os.ReadDir(odir); len(entries) != 1 {
		t.Fatalf("%d files left in the owner folder, want the one good blob", len(entries))
	}
	if used, _ := lazy.Usage(self); used != int64(len(good)) {
		t.Fatalf("usage %d after Verify, want %d", used, len(good))
	}
}
