package e2e

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/kithtest"
)

// Archives over the real binary (issue 13's "Must show").

// archFlags run agents whose archive service works only when asked
// ("kith archive now"), so that a test decides when a pass runs, and that
// count a device unseen for 3 s as gone.
var archFlags = []string{"--heartbeat", "300ms", "--raft-profile", "lan", "--archive-every", "1h", "--archive-gone", "3s"}

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
		v := a0.waitConv(t, ids[i], "decided", isDecided)
		a1.waitConv(t, ids[i], "decided on alice-1", isDecided)
		before[ids[i]] = thread(v)
	}
	start := time.Now()
	archived := a0.archiveNow(t)
	if len(archived) != n {
		t.Fatalf("archive now archived %d conversations, want %d: %v", len(archived), n, archived)
	}
	t.Logf("sealed and replicated %d conversations in %v", n, time.Since(start).Round(time.Millisecond))
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
	if got := a0.archiveNow(t); len(got) != 1 {
		t.Fatalf("archive now: %v", got)
	}
	var blobs []control.ArchiveBlob
	a0.JSON(&blobs, "", "archive", "list")
	dir := t.TempDir()
	keys := func(args ...string) string {
		f := filepath.Join(dir, strings.Join(args, "")+".key")
		a0.JSON(new(map[string]any), a0.id.Mnemonic, append([]string{"keys", "export", "-o", f}, args...)...)
		return f
	}
	inner, outer := keys("--device", "0"), keys("--recovery")
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
}
