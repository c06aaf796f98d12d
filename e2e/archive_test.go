package e2e

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/kithtest"
	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/seed"
)

type seedDevice = seed.DevicePublic

// Archives over the real binary (issue 13's "Must show").

// archFlags run agents whose archive service works only when asked
// ("kith archive now"), so that a test decides when a pass runs, and that
// count a device unseen for 3 s as gone.
var archFlags = []string{"--heartbeat", "300ms", "--raft-profile", "lan", "--archive-every", "1h", "--archive-gone", "3s", "--archive-settle", "2s"}

// archWait bounds what these tests wait for, on a loaded machine.
const archWait = 90 * time.Second

// archDevice makes device index of the user of phrase (a new user with
// init when phrase is ""), running an agent on host.
func archDevice(t *testing.T, name, host, phrase string, index int) *person {
	t.Helper()
	d := kithtest.NewDevice(t)
	var id identity
	if phrase == "" {
		d.JSON(&id, "", "init", "--name", name, "--words", "12")
	} else {
		d.JSON(&id, phrase, "restore", "--device", strconv.Itoa(index), "--name", name)
		id.Mnemonic = phrase
	}
	p := &person{Device: d, id: id}
	p.agent = d.Start(kithtest.FreeAddr(t, host), archFlags...)
	return p
}

// pairOwnPersons pairs two devices of one user.
func pairOwnPersons(t *testing.T, a, b *person) {
	t.Helper()
	_, aPNG := a.show(t)
	_, bPNG := b.show(t)
	var r1, r2 scanResult
	b.JSON(&r1, "", "pair", "scan", "--no-wait", aPNG)
	a.JSON(&r2, "", "pair", "scan", bPNG)
	if r2.Kind != "own" || r2.Status != "paired" {
		t.Fatalf("own-device pairing: %+v, %+v", r1, r2)
	}
}

func (p *person) archiveStatus(t *testing.T) control.ArchiveStatus {
	t.Helper()
	var st control.ArchiveStatus
	p.JSON(&st, "", "archive", "status")
	return st
}

func (p *person) archiveNow(t *testing.T) []string {
	t.Helper()
	var res control.ArchiveNowResult
	p.JSON(&res, "", "archive", "now")
	return res.Archived
}

// archiveAll runs archive passes on p until n conversations show as
// archived in its conv list (decided ones wait --archive-settle; another
// own device may seal some) and returns the IDs p's passes archived.
func (p *person) archiveAll(t *testing.T, n int) []string {
	t.Helper()
	var all []string
	kithtest.Eventually(t, archWait, fmt.Sprintf("%d conversations archived", n), func() error {
		all = append(all, p.archiveNow(t)...)
		var list []control.ConvSummary
		p.JSON(&list, "", "conv", "list")
		got := 0
		for _, s := range list {
			if s.Status == "archived" {
				got++
			}
		}
		if got < n {
			return fmt.Errorf("%d archived", got)
		}
		return nil
	})
	return all
}

// thread is what must come back byte-identical from an archive.
func thread(v control.ConvView) string {
	v.Status = ""
	v.Names = nil
	b, _ := json.Marshal(v)
	return string(b)
}

// TestArchiveLoseDevice: alice has two devices and a friend, bob. Ten
// conversations are decided and archived: they leave alice's stores (no
// topic in any file of either home), conv list shows them archived, and
// conv show opens them with both devices cooperating. Alice's second
// device is killed and its home deleted; restored from the phrase in a
// new home and paired again, it gets the placement, shows all ten
// byte-identical to before, and repair brings under_replicated back to 0.
func TestArchiveLoseDevice(t *testing.T) {
	t.Parallel()
	a0 := archDevice(t, "alice-0", "127.0.0.61", "", 0)
	bob := archDevice(t, "bob", "127.0.0.62", "", 0)
	a1 := archDevice(t, "alice-1", "127.0.0.63", a0.id.Mnemonic, 1)
	pair(t, bob, a0)
	pairOwnPersons(t, a0, a1)
	kithtest.Eventually(t, archWait, "bob knows alice-1", func() error {
		if f, ok := findFriend(bob.friends(t), a0.id.UserID); !ok || len(f.Devices) != 2 {
			return fmt.Errorf("bob's alice: %+v", f)
		}
		return nil
	})
	const n = 10
	ids := make([]string, n)
	topics := make([]string, n)
	before := map[string]string{}
	for i := range n {
		topics[i] = fmt.Sprintf("Archived topic number %02d zq", i)
		ids[i] = a0.convNew(t, topics[i], "discussion", `tally("yes") >= 1`, bob)
		a0.convPost(t, ids[i], "text", fmt.Sprintf("archived body %02d xq", i))
		a0.convVote(t, ids[i], "yes")
	}
	for i := range n {
		waitOneOutcome(t, ids[i], a0, a1, bob)
		before[ids[i]] = thread(a0.waitConv(t, ids[i], "decided", isDecided))
	}
	start := time.Now()
	a0.archiveAll(t, n)
	t.Logf("sealed and replicated %d conversations in %v (with the settle time)", n, time.Since(start).Round(time.Millisecond))
	kithtest.Eventually(t, archWait, "every blob on two holders", func() error {
		if st := a0.archiveStatus(t); st.Blobs < 2 || st.UnderReplicated != 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	// Alice-1 forgets its copies when the placement reaches it.
	kithtest.Eventually(t, archWait, "alice-1 forgot the archived conversations", func() error {
		for i := range n {
			if f := findInHome(t, a1.Home, topics[i]); f != "" {
				return fmt.Errorf("topic %d still in %s", i, f)
			}
		}
		return nil
	})
	for i := range n {
		for _, s := range []string{topics[i], fmt.Sprintf("archived body %02d xq", i)} {
			if f := findInHome(t, a0.Home, s); f != "" {
				t.Fatalf("%q is still in alice-0's %s after archiving", s, f)
			}
		}
	}
	var list []control.ConvSummary
	a0.JSON(&list, "", "conv", "list")
	got := 0
	for _, s := range list {
		if s.Status == "archived" {
			got++
		}
	}
	if got != n {
		t.Fatalf("conv list shows %d archived conversations, want %d: %+v", got, n, list)
	}
	v, err := a0.convShow(t, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != "archived" || thread(v) != before[ids[0]] {
		t.Fatalf("alice-0's archived conversation:\n got %s %s\nwant %s", v.Status, thread(v), before[ids[0]])
	}

	// Alice-1 is lost: killed, its home deleted.
	a1.agent.Kill()
	if err := os.RemoveAll(a1.Home); err != nil {
		t.Fatal(err)
	}
	r1 := archDevice(t, "alice-1", "127.0.0.64", a0.id.Mnemonic, 1)
	pairOwnPersons(t, a0, r1)
	start = time.Now()
	for i := range n {
		kithtest.Eventually(t, archWait, "the restored device shows conversation "+strconv.Itoa(i), func() error {
			v, err := r1.convShow(t, ids[i])
			if err != nil {
				return err
			}
			if thread(v) != before[ids[i]] {
				return fmt.Errorf("not byte-identical:\n got %s\nwant %s", thread(v), before[ids[i]])
			}
			return nil
		})
	}
	t.Logf("the restored device read back %d conversations in %v", n, time.Since(start).Round(time.Millisecond))
	kithtest.Eventually(t, archWait, "repair after the loss", func() error {
		a0.archiveNow(t) // a pass: repair
		if st := a0.archiveStatus(t); st.UnderReplicated != 0 {
			return fmt.Errorf("status %+v", st)
		}
		// The restored device has alice-1's ID: it counts as a holder only
		// once its new folder really holds the blob.
		var blobs []control.ArchiveBlob
		a0.JSON(&blobs, "", "archive", "list")
		for _, b := range blobs {
			if len(b.Holders) < 2 {
				return fmt.Errorf("blob %s has holders %v", b.Blob, b.Holders)
			}
			for _, h := range b.Holders {
				if h.String() == r1.id.DeviceID {
					if _, err := os.Stat(filepath.Join(r1.Home, "blobs", a0.id.UserID, b.Blob)); err != nil {
						return fmt.Errorf("placement names the restored device for %s: %v", b.Blob, err)
					}
				}
			}
		}
		return nil
	})
}

// TestArchiveStockAge: the stock age tool opens both layers of a blob
// from "kith archive get" with keys from "kith keys export", and gets the
// archived conversation; one key alone opens nothing.
func TestArchiveStockAge(t *testing.T) {
	t.Parallel()
	agePath, err := exec.LookPath("age")
	if err != nil {
		t.Skip("the stock age tool is not installed (age not on PATH)")
	}
	a0 := archDevice(t, "alice-0", "127.0.0.65", "", 0)
	bob := archDevice(t, "bob", "127.0.0.66", "", 0)
	pair(t, bob, a0)
	id := a0.convNew(t, "Stock age topic kq", "discussion", `tally("yes") >= 1`, bob)
	a0.convPost(t, id, "text", "stock age body kq")
	a0.convVote(t, id, "yes")
	a0.waitConv(t, id, "decided", isDecided)
	waitOneOutcome(t, id, a0, bob)
	dir := t.TempDir()
	keys := func(args ...string) string {
		f := filepath.Join(dir, strings.Join(args, "")+".key")
		a0.JSON(new(map[string]any), a0.id.Mnemonic, append([]string{"keys", "export", "-o", f}, args...)...)
		return f
	}
	inner, outer := keys("--device", "0"), keys("--recovery")
	// The conversation's sealed records as they are at rest now: its
	// sealed key, topic, bodies and envelopes.
	sealed := sealedRecords(t, a0.Home)
	if len(sealed) == 0 {
		t.Fatal("no sealed conversation record in alice's store before archiving: the check after it would show nothing")
	}
	for _, rec := range sealed {
		if f, _ := grepTree(a0.Home, rec); f == "" {
			t.Fatalf("a sealed record is not found in alice's home before archiving: the check after it would show nothing")
		}
	}
	a0.archiveAll(t, 1)
	var blobs []control.ArchiveBlob
	a0.JSON(&blobs, "", "archive", "list")
	opened := 0
	for i, b := range blobs {
		file := filepath.Join(dir, fmt.Sprintf("blob%d", i))
		a0.JSON(new(map[string]any), "", "archive", "get", b.Blob, "--out", file)
		peeled, err := exec.Command(agePath, "-d", "-i", outer, file).Output()
		if err != nil {
			t.Fatalf("age with the outer key: %v", err)
		}
		if _, err := exec.Command(agePath, "-d", "-i", inner, file).Output(); err == nil {
			t.Fatal("the inner key alone opened the outer layer")
		}
		pf := filepath.Join(dir, fmt.Sprintf("inner%d", i))
		if err := os.WriteFile(pf, peeled, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := exec.Command(agePath, "-d", "-i", outer, pf).Output(); err == nil {
			t.Fatal("the outer key opened the inner layer")
		}
		part, err := exec.Command(agePath, "-d", "-i", inner, pf).Output()
		if err != nil {
			t.Fatalf("age with the inner key: %v", err)
		}
		if string(part[:8]) == "kithblob" && len(part) > 38 && part[9] == 1 {
			// A DEFLATE part (archive/doc.go): inflate what follows the header.
			if raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(part[38:]))); err == nil {
				part = raw
			}
		}
		if strings.Contains(string(part), "stock age body kq") || strings.Contains(string(part), "kithindx") {
			opened++
		}
	}
	if opened == 0 {
		t.Fatal("no blob opened by the stock age tool held the conversation or the index")
	}
	// One compromised device: its whole home and its key reveal nothing.
	for _, s := range []string{"Stock age topic kq", "stock age body kq"} {
		if f := findInHome(t, a0.Home, s); f != "" {
			t.Fatalf("%q is in %s after archiving", s, f)
		}
	}
	for _, rec := range sealed {
		if f, _ := grepTree(a0.Home, rec); f != "" {
			t.Fatalf("a sealed record of the archived conversation (%d bytes) is still in %s", len(rec), f)
		}
	}
	if n := ageOpensInHome(t, a0.Home, inner); n != 0 {
		t.Fatalf("%d age files in alice's home open with her device's key alone", n)
	}
}

// sealedRecords copies home's store and returns the sealed values its
// conversation records hold (fields key, sealed, env), as the file holds
// them: base64 text in JSON.
func sealedRecords(t *testing.T, home string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(home, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), store.FileName)
	if err := os.WriteFile(cp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(cp)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out [][]byte
	for _, bucket := range []string{store.BucketConversations, store.BucketConvMessages} {
		err := st.List(bucket, func(_ string, raw []byte) error {
			var m map[string]json.RawMessage
			if json.Unmarshal(raw, &m) != nil {
				return nil
			}
			for _, k := range []string{"key", "sealed", "env"} {
				// As bbolt keeps it: the base64 text inside the JSON.
				if v := bytes.Trim(m[k], `"`); len(v) >= 44 {
					out = append(out, slices.Clone(v))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// ageOpensInHome counts the age files found anywhere in the raw bytes of
// the files under home (bbolt's free pages included) of which the
// identity in keyFile decrypts any byte.
func ageOpensInHome(t *testing.T, home, keyFile string) int {
	t.Helper()
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(kb))
	if err != nil {
		t.Fatal(err)
	}
	magic := []byte("age-encryption.org/v1")
	opened, seen := 0, 0
	filepath.WalkDir(home, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for off := 0; ; {
			i := bytes.Index(b[off:], magic)
			if i < 0 {
				break
			}
			seen++
			r, err := age.Decrypt(bytes.NewReader(b[off+i:]), ids...)
			if err == nil {
				if n, _ := io.ReadFull(r, make([]byte, 1)); n > 0 {
					opened++
					t.Logf("an age file at %s+%d opens with the device key", path, off+i)
				}
			}
			off += i + len(magic)
		}
		return nil
	})
	t.Logf("%d age files found in the raw bytes of %s", seen, home)
	return opened
}

// TestArchiveLoseEveryDevice: alice's two devices are both lost. With only
// the seed phrase, a device restored into a new home pairs with bob,
// whose device relayed her blobs; "kith archive recover" brings back her
// conversations byte-identical, and her friends (carol too, whom the new
// device never paired with) from the sealed index.
func TestArchiveLoseEveryDevice(t *testing.T) {
	t.Parallel()
	a0 := archDevice(t, "alice-0", "127.0.0.67", "", 0)
	bob := archDevice(t, "bob", "127.0.0.68", "", 0)
	carol := archDevice(t, "carol", "127.0.0.69", "", 0)
	a1 := archDevice(t, "alice-1", "127.0.0.70", a0.id.Mnemonic, 1)
	pair(t, bob, a0)
	pair(t, carol, a0)
	pairOwnPersons(t, a0, a1)
	// Carol takes no blobs: her relay refuses them, with a reason.
	var q control.ArchiveQuotaResult
	carol.JSON(&q, "", "archive", "quota", "0")
	if q.QuotaBytes != 0 {
		t.Fatalf("carol's quota: %+v", q)
	}
	kithtest.Eventually(t, archWait, "bob knows alice-1", func() error {
		if f, ok := findFriend(bob.friends(t), a0.id.UserID); !ok || len(f.Devices) != 2 {
			return fmt.Errorf("bob's alice: %+v", f)
		}
		return nil
	})
	before := map[string]string{}
	for i := range 2 {
		id := a0.convNew(t, fmt.Sprintf("Everything lost topic %d", i), "discussion", `tally("yes") >= 1`, bob)
		a0.convPost(t, id, "text", fmt.Sprintf("everything lost body %d", i))
		a0.convVote(t, id, "yes")
		waitOneOutcome(t, id, a0, a1, bob)
		before[id] = thread(a0.waitConv(t, id, "decided", isDecided))
	}
	a0.archiveAll(t, 2)
	kithtest.Eventually(t, archWait, "bob's device relays every blob", func() error {
		var blobs []control.ArchiveBlob
		a0.JSON(&blobs, "", "archive", "list")
		for _, b := range blobs {
			found := false
			for _, h := range b.Holders {
				found = found || h.String() == bob.id.DeviceID
			}
			if !found {
				a0.archiveNow(t)
				return fmt.Errorf("blob %s not on bob's device: %v", b.Blob, b.Holders)
			}
		}
		return nil
	})
	if !a0.agent.Contains("archive quota full on this relay") {
		t.Error("alice-0's log does not show carol's relay refusing a blob for its quota")
	}
	for _, p := range []*person{a0, a1} {
		p.agent.Kill()
		if err := os.RemoveAll(p.Home); err != nil {
			t.Fatal(err)
		}
	}
	n0 := archDevice(t, "alice-new", "127.0.0.71", a0.id.Mnemonic, 0)
	pair(t, bob, n0)
	var res control.ArchiveRecoverResult
	start := time.Now()
	kithtest.Eventually(t, archWait, "recovery from bob's relay", func() error {
		r := n0.Run(a0.id.Mnemonic, "--json", "archive", "recover")
		if r.Code != 0 {
			return fmt.Errorf("archive recover: %s", r)
		}
		return json.Unmarshal([]byte(r.Stdout), &res)
	})
	t.Logf("recovered %d conversations from bob's relay in %v", len(res.Conversations), time.Since(start).Round(time.Millisecond))
	if len(res.Conversations) != 2 {
		t.Fatalf("recovered %d conversations, want 2", len(res.Conversations))
	}
	for _, v := range res.Conversations {
		if thread(v) != before[v.ConversationID] {
			t.Fatalf("not byte-identical:\n got %s\nwant %s", thread(v), before[v.ConversationID])
		}
	}
	want := []string{bob.id.UserID, carol.id.UserID}
	slices.Sort(want)
	if !slices.Equal(res.Friends, want) || res.OwnDevices != 2 {
		t.Fatalf("recovered friends %v (want %v), own devices %d (want 2)", res.Friends, want, res.OwnDevices)
	}
	if _, ok := findFriend(n0.friends(t), carol.id.UserID); !ok {
		t.Fatalf("carol is not among the new device's friends: %+v", n0.friends(t))
	}
	var list []control.ConvSummary
	n0.JSON(&list, "", "conv", "list")
	if len(list) != 2 || list[0].Status != "archived" {
		t.Fatalf("conv list after recovery: %+v", list)
	}
}

// TestArchiveDamageAndKill: alice has one device and bob relays her
// blobs. A flipped bit, a truncated blob and a blob swapped for another
// in her blob folder are each detected and healed from bob's copy. Then
// her agent is killed with SIGKILL while it seals: after a restart no
// blob in her folder is half-written or fails its name, every blob the
// placement counts is whole, and the conversations left are archived by
// the next pass.
func TestArchiveDamageAndKill(t *testing.T) {
	t.Parallel()
	a0 := archDevice(t, "alice", "127.0.0.72", "", 0)
	bob := archDevice(t, "bob", "127.0.0.73", "", 0)
	pair(t, bob, a0)
	mk := func(i int) string {
		id := a0.convNew(t, fmt.Sprintf("Damage topic %d", i), "discussion", `tally("yes") >= 1`, bob)
		a0.convPost(t, id, "text", strings.Repeat(fmt.Sprintf("body %d ", i), 50))
		a0.convVote(t, id, "yes")
		waitOneOutcome(t, id, a0, bob)
		return id
	}
	mk(0)
	mk(1)
	a0.archiveAll(t, 2)
	var blobs []control.ArchiveBlob
	kithtest.Eventually(t, archWait, "every blob also on bob's device", func() error {
		a0.JSON(&blobs, "", "archive", "list")
		for _, b := range blobs {
			if !slices.ContainsFunc(b.Holders, func(h seedDevice) bool { return h.String() == bob.id.DeviceID }) {
				a0.archiveNow(t)
				return fmt.Errorf("blob %s holders %v", b.Blob, b.Holders)
			}
		}
		return nil
	})
	if len(blobs) < 2 {
		t.Fatalf("%d blobs, want an archive and an index at least", len(blobs))
	}
	path := func(b control.ArchiveBlob) string { return filepath.Join(a0.Home, "blobs", a0.id.UserID, b.Blob) }
	orig, err := os.ReadFile(path(blobs[0]))
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(path(blobs[1]))
	if err != nil {
		t.Fatal(err)
	}
	damage := map[string][]byte{
		"flipped bit": func() []byte { b := slices.Clone(orig); b[len(b)/2] ^= 0x10; return b }(),
		"truncated":   orig[:len(orig)-7],
		"swapped":     other,
	}
	for what, bad := range damage {
		if err := os.WriteFile(path(blobs[0]), bad, 0o600); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "blob")
		a0.JSON(new(map[string]any), "", "archive", "get", blobs[0].Blob, "--out", out)
		got, _ := os.ReadFile(out)
		healed, _ := os.ReadFile(path(blobs[0]))
		if !bytes.Equal(got, orig) || !bytes.Equal(healed, orig) {
			t.Fatalf("%s: the blob was not healed from bob's copy", what)
		}
	}
	if !a0.agent.Contains("a damaged blob here") || !a0.agent.Contains("healed a damaged blob") {
		t.Error("alice's log does not say the damage was found and healed")
	}
	// Damaged while her agent was stopped: starting reads no blob, and the
	// check that runs after the start finds it; the pass it wakes has the
	// placement drop her copy, and repair brings bob's back.
	if err := a0.agent.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path(blobs[0]), damage["flipped bit"], 0o600); err != nil {
		t.Fatal(err)
	}
	a0.agent = a0.Start(a0.agent.Addr, archFlags...)
	kithtest.Eventually(t, archWait, "the blob damaged while stopped found after the start and healed", func() error {
		if !a0.agent.Contains("damaged blobs removed") {
			return errors.New("the blob check has not found it yet")
		}
		if healed, _ := os.ReadFile(path(blobs[0])); !bytes.Equal(healed, orig) || !a0.agent.Contains("repair: fetched a blob this device is to hold") {
			a0.archiveNow(t)
			return errors.New("not fetched back by repair yet")
		}
		return nil
	})

	// SIGKILL while sealing: archive now in the background, kill soon
	// after, at a different moment each round.
	for round := range 3 {
		id := mk(10 + round)
		time.Sleep(2500 * time.Millisecond) // --archive-settle
		cmd := exec.Command(kithtest.Binary(t), "--home", a0.Home, "--json", "archive", "now")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(round*15) * time.Millisecond)
		a0.agent.Kill()
		cmd.Wait()
		a0.agent = a0.Start(a0.agent.Addr, archFlags...)
		// Every file in the folder is a whole blob named by its hash.
		dir := filepath.Join(a0.Home, "blobs", a0.id.UserID)
		checkWhole(t, dir)
		var list []control.ArchiveBlob
		a0.JSON(&list, "", "archive", "list")
		for _, b := range list {
			if slices.ContainsFunc(b.Holders, func(h seedDevice) bool { return h.String() == a0.id.DeviceID }) {
				if _, err := os.Stat(filepath.Join(dir, b.Blob)); err != nil {
					t.Fatalf("round %d: the placement counts alice's copy of %s, which is not whole: %v", round, b.Blob, err)
				}
			}
		}
		kithtest.Eventually(t, archWait, "the conversation archived after the restart", func() error {
			a0.archiveNow(t)
			var cs []control.ConvSummary
			a0.JSON(&cs, "", "conv", "list")
			for _, c := range cs {
				if c.ConversationID == id && c.Status == "archived" {
					return nil
				}
			}
			return fmt.Errorf("conversation %s not archived: %+v", id[:12], cs)
		})
	}
	kithtest.Eventually(t, archWait, "every blob on two holders", func() error {
		a0.archiveNow(t)
		if st := a0.archiveStatus(t); st.UnderReplicated != 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
}

// TestArchiveProgressBar: a device reading an archived conversation of
// more than a MiB shows a progress bar on a terminal, and none when
// stdout is not a terminal.
func TestArchiveProgressBar(t *testing.T) {
	t.Parallel()
	a0 := archDevice(t, "alice-0", "127.0.0.74", "", 0)
	bob := archDevice(t, "bob", "127.0.0.75", "", 0)
	a1 := archDevice(t, "alice-1", "127.0.0.76", a0.id.Mnemonic, 1)
	pair(t, bob, a0)
	pairOwnPersons(t, a0, a1)
	kithtest.Eventually(t, archWait, "bob knows alice-1", func() error {
		if f, ok := findFriend(bob.friends(t), a0.id.UserID); !ok || len(f.Devices) != 2 {
			return fmt.Errorf("bob's alice: %+v", f)
		}
		return nil
	})
	id := a0.convNew(t, "A long archived thread", "discussion", `tally("yes") >= 1`, bob)
	c := a0.agent.Client()
	ctx := context.Background()
	rnd := make([]byte, 12<<10)
	for i := range 150 {
		randFill(rnd, uint64(i))
		if _, err := c.ConvPost(ctx, control.ConvPostRequest{ConversationID: id, Kind: "text", Body: hex.EncodeToString(rnd)[:16<<10]}); err != nil {
			t.Fatal(err)
		}
	}
	a0.convVote(t, id, "yes")
	waitOneOutcome(t, id, a0, a1, bob)
	a0.archiveAll(t, 1)
	var st control.ArchiveStatus
	a0.JSON(&st, "", "archive", "status")
	if st.Bytes < 1<<20 {
		t.Fatalf("the archive has %d bytes, want more than a MiB for the bar", st.Bytes)
	}
	kithtest.Eventually(t, archWait, "alice-1 reads it from the archive", func() error {
		v, err := a1.convShow(t, id)
		if err == nil && v.Status != "archived" {
			err = fmt.Errorf("status %s", v.Status)
		}
		return err
	})
	plain := a1.Run("", "conv", "show", id[:12])
	if plain.Code != 0 || strings.Contains(plain.Stdout, "fetching the archive") || !strings.Contains(plain.Stdout, "A long archived thread") {
		t.Fatalf("conv show on a pipe: %s", plain)
	}
	errFile := filepath.Join(t.TempDir(), "stderr")
	term := kithtest.NewTerminal(t, 120, 40, `"$KITH" --home "$H" conv show "$ID" 2>"$E"; echo; echo "exit=$?"; exec cat >/dev/null`,
		"KITH="+kithtest.Binary(t), "H="+a1.Home, "ID="+id[:12], "E="+errFile)
	term.WaitFor("exit=")
	bar, err := os.ReadFile(errFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(bar), "fetching the archive") || !strings.Contains(string(bar), "100 %") {
		t.Fatalf("conv show on a terminal shows no progress bar; stderr:\n%q", bar)
	}
}

// checkWhole fails the test unless every file in dir (a blob folder,
// which a restarted agent has scanned) is a whole blob named by its
// SHA-256; leftovers of interrupted writes (".tmp-") are allowed only in a
// folder whose agent has not restarted, and are not blobs.
func checkWhole(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != e.Name() {
			t.Fatalf("%s is not a whole blob after SIGKILL", filepath.Join(dir, e.Name()))
		}
	}
}

// randFill fills b with bytes from a PCG seeded by s.
func randFill(b []byte, s uint64) {
	r := rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}

// TestArchiveRepairAfterRevoke: alice's second device, a holder of every
// blob, is revoked; its copies stop counting and alice's laptop copies
// the blobs elsewhere until each has two live holders again.
func TestArchiveRepairAfterRevoke(t *testing.T) {
	t.Parallel()
	a0 := archDevice(t, "alice-0", "127.0.0.77", "", 0)
	bob := archDevice(t, "bob", "127.0.0.78", "", 0)
	a1 := archDevice(t, "alice-1", "127.0.0.79", a0.id.Mnemonic, 1)
	pair(t, bob, a0)
	pairOwnPersons(t, a0, a1)
	// Bob's relay takes nothing for now: alice's two devices are the only
	// holders.
	bob.JSON(new(control.ArchiveQuotaResult), "", "archive", "quota", "0")
	id := a0.convNew(t, "Revoked holder topic", "discussion", `tally("yes") >= 1`, bob)
	a0.convVote(t, id, "yes")
	waitOneOutcome(t, id, a0, bob)
	a0.archiveAll(t, 1)
	holds := func(b control.ArchiveBlob, dev string) bool {
		return slices.ContainsFunc(b.Holders, func(h seedDevice) bool { return h.String() == dev })
	}
	kithtest.Eventually(t, archWait, "alice-1 holds every blob", func() error {
		a0.archiveNow(t)
		var blobs []control.ArchiveBlob
		a0.JSON(&blobs, "", "archive", "list")
		for _, b := range blobs {
			if !holds(b, a1.id.DeviceID) {
				return fmt.Errorf("blob %s holders %v", b.Blob, b.Holders)
			}
		}
		return nil
	})
	var rev struct {
		Revoked bool `json:"revoked"`
	}
	a0.JSON(&rev, a0.id.Mnemonic, "devices", "revoke", "1")
	if !rev.Revoked {
		t.Fatalf("revoke: %+v", rev)
	}
	// The revoked device's copies no longer count; nobody else takes them.
	kithtest.Eventually(t, archWait, "the blobs under-replicated", func() error {
		if st := a0.archiveStatus(t); st.UnderReplicated == 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	bob.JSON(new(control.ArchiveQuotaResult), "", "archive", "quota", "1G")
	// SIGKILL during the repair: alice's agent dies while it copies.
	cmd := exec.Command(kithtest.Binary(t), "--home", a0.Home, "--json", "archive", "now")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	a0.agent.Kill()
	cmd.Wait()
	a0.agent = a0.Start(a0.agent.Addr, archFlags...)
	checkWhole(t, filepath.Join(bob.Home, "blobs", a0.id.UserID))
	checkWhole(t, filepath.Join(a0.Home, "blobs", a0.id.UserID))
	kithtest.Eventually(t, archWait, "two live holders again", func() error {
		a0.archiveNow(t)
		if st := a0.archiveStatus(t); st.UnderReplicated != 0 {
			return fmt.Errorf("status %+v", st)
		}
		var blobs []control.ArchiveBlob
		a0.JSON(&blobs, "", "archive", "list")
		for _, b := range blobs {
			live := 0
			for _, h := range b.Holders {
				if h.String() != a1.id.DeviceID {
					live++
				}
			}
			if live < 2 || !holds(b, bob.id.DeviceID) {
				return fmt.Errorf("blob %s has %d live holders: %v", b.Blob, live, b.Holders)
			}
		}
		return nil
	})
}

// TestArchivePruneIndex: every pass that seals makes a new index, which
// lists every archive. After five passes, alice's two devices and bob's
// relay hold at most two index blobs (the newest two generations) for
// her, every archive blob is still where the placement says, nothing is
// under-replicated, and after losing both devices the recovery from bob's
// relay still finds the newest index: every conversation comes back.
func TestArchivePruneIndex(t *testing.T) {
	t.Parallel()
	a0 := archDevice(t, "alice-0", "127.0.0.81", "", 0)
	bob := archDevice(t, "bob", "127.0.0.82", "", 0)
	a1 := archDevice(t, "alice-1", "127.0.0.83", a0.id.Mnemonic, 1)
	pair(t, bob, a0)
	pairOwnPersons(t, a0, a1)
	kithtest.Eventually(t, archWait, "bob knows alice-1", func() error {
		if f, ok := findFriend(bob.friends(t), a0.id.UserID); !ok || len(f.Devices) != 2 {
			return fmt.Errorf("bob's alice: %+v", f)
		}
		return nil
	})
	const passes = 5
	for i := range passes {
		id := a0.convNew(t, fmt.Sprintf("Prune topic %d", i), "discussion", `tally("yes") >= 1`, bob)
		a0.convVote(t, id, "yes")
		waitOneOutcome(t, id, a0, a1, bob)
		a0.archiveAll(t, i+1)
	}
	// The files in a folder of alice's blobs that the placement does not
	// list are superseded indexes: at most one (the second-newest) may be
	// left beside the current one.
	check := func(p *person, listed map[string]bool, held []string) error {
		dir := filepath.Join(p.Home, "blobs", a0.id.UserID)
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		files := map[string]bool{}
		var extra []string
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			files[e.Name()] = true
			if !listed[e.Name()] {
				extra = append(extra, e.Name()[:12])
			}
		}
		if len(extra) > 1 {
			return fmt.Errorf("%s holds %d superseded indexes of alice: %v", p.id.Name, len(extra), extra)
		}
		for _, b := range held {
			if !files[b] {
				return fmt.Errorf("%s lost blob %s, which the placement says it holds", p.id.Name, b[:12])
			}
		}
		return nil
	}
	var blobs []control.ArchiveBlob
	kithtest.Eventually(t, archWait, "superseded indexes pruned everywhere, every blob on two holders and bob's relay", func() error {
		a0.archiveNow(t)
		a1.archiveNow(t)
		a0.JSON(&blobs, "", "archive", "list")
		if len(blobs) < passes+1 {
			return fmt.Errorf("%d blobs listed, want %d archives and the index", len(blobs), passes)
		}
		listed := map[string]bool{}
		held := map[string][]string{}
		for _, b := range blobs {
			listed[b.Blob] = true
			for _, h := range b.Holders {
				held[h.String()] = append(held[h.String()], b.Blob)
			}
			if !slices.ContainsFunc(b.Holders, func(h seedDevice) bool { return h.String() == bob.id.DeviceID }) {
				return fmt.Errorf("blob %s not on bob's relay: %v", b.Blob[:12], b.Holders)
			}
		}
		if st := a0.archiveStatus(t); st.UnderReplicated != 0 {
			return fmt.Errorf("status %+v", st)
		}
		for _, p := range []*person{a0, a1, bob} {
			if err := check(p, listed, held[p.id.DeviceID]); err != nil {
				return err
			}
		}
		return nil
	})
	if !bob.agent.Contains("deleted blobs a friend no longer needs") || !a0.agent.Contains("deleted a superseded index") {
		t.Error("the logs do not show the relay and alice's device deleting superseded indexes")
	}
	for _, p := range []*person{a0, a1} {
		p.agent.Kill()
		if err := os.RemoveAll(p.Home); err != nil {
			t.Fatal(err)
		}
	}
	n0 := archDevice(t, "alice-new", "127.0.0.84", a0.id.Mnemonic, 0)
	pair(t, bob, n0)
	var res control.ArchiveRecoverResult
	kithtest.Eventually(t, archWait, "recovery from bob's relay", func() error {
		r := n0.Run(a0.id.Mnemonic, "--json", "archive", "recover")
		if r.Code != 0 {
			return fmt.Errorf("archive recover: %s", r)
		}
		return json.Unmarshal([]byte(r.Stdout), &res)
	})
	if len(res.Conversations) != passes || res.Generation < passes {
		t.Fatalf("recovered %d conversations from generation %d, want %d from %d or above", len(res.Conversations), res.Generation, passes, passes)
	}
}
