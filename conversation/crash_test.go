package conversation

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/seed"
)

// TestCrashCopy: the database file as it is right after a call returned
// (what a SIGKILL leaves) holds everything acknowledged and the whole
// outbox; the exchange resumes from it and converges.
func TestCrashCopy(t *testing.T) {
	l := newLab(t)
	alice, bob := l.addUser("alice", 1), l.addUser("bob", 1)
	a, b := alice.devs[0], bob.devs[0]
	id := l.create(alice, Discussion, `unanimous("yes")`, "crash", bob)
	for i := range 6 {
		if _, err := a.book.Post(id, "text", fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	p := a.book.Pending(b.self.Cert.Device, 100)
	var acked [][]byte
	for _, o := range p[:4] { // bob takes half, then "crashes"
		ack, err := b.book.Receive(o.Envelope)
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, ack)
	}
	crash := func(d *device) {
		raw, err := os.ReadFile(d.path) // what is on disk now
		if err != nil {
			t.Fatal(err)
		}
		d.close()
		d.path = filepath.Join(t.TempDir(), "after-crash.db")
		if err := os.WriteFile(d.path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		l.open(d)
	}
	crash(b)
	if v := l.show(b, id); len(v.Messages) != 3 {
		t.Fatalf("bob after the crash shows %d messages, want the 3 he acknowledged", len(v.Messages))
	}
	for _, ack := range acked[:2] { // alice takes two acks, then crashes
		if _, err := a.book.Receive(ack); err != nil {
			t.Fatal(err)
		}
	}
	crash(a)
	if got := len(a.book.Pending(b.self.Cert.Device, 100)); got != len(p)-2 {
		t.Fatalf("alice's outbox after the crash holds %d, want %d", got, len(p)-2)
	}
	l.net(2, 0.3, 0.3).settle()
	if v := checkConverged(t, l, id); len(v.Messages) != 6 {
		t.Fatalf("%d messages after resuming, want 6", len(v.Messages))
	}
}

const crashEnv = "KITH_CONVERSATION_CRASH_DIR"

// TestCrashKill: a process receiving envelopes is killed with SIGKILL;
// every envelope it acknowledged is in its database afterwards, and a
// second delivery of them all is idempotent.
func TestCrashKill(t *testing.T) {
	l := newLab(t)
	alice, bob := l.addUser("alice", 1), l.addUser("bob", 1)
	a, b := alice.devs[0], bob.devs[0]
	id := l.create(alice, Chat, "", "kill -9", bob)
	const total = 40
	for i := range total {
		if _, err := a.book.Post(id, "text", fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	var list []byte
	p := a.book.Pending(b.self.Cert.Device, 1000)
	for _, o := range p {
		list = binary.BigEndian.AppendUint32(list, uint32(len(o.Envelope)))
		list = append(list, o.Envelope...)
	}
	if err := os.WriteFile(filepath.Join(dir, "envelopes"), list, 0o600); err != nil {
		t.Fatal(err)
	}
	b.close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir+"|"+b.path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[int]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			i, _ := strconv.Atoi(n)
			acked[i] = true
			if len(acked) == total/2 {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
	}
	go io.Copy(io.Discard, out)
	cmd.Wait()
	if len(acked) != total/2 {
		t.Fatalf("the child acknowledged %d envelopes before it ended, want %d", len(acked), total/2)
	}
	l.open(b)
	stored := map[MessageID]bool{MessageID(id): true}
	for _, m := range l.show(b, id).Messages {
		stored[m.ID] = true
	}
	for i := range acked {
		h, err := Inspect(p[i].Envelope)
		if err != nil {
			t.Fatal(err)
		}
		if !stored[h.ID] {
			t.Fatalf("envelope %d was acknowledged but is not stored after SIGKILL", i)
		}
	}
	for _, o := range p { // everything again: the duplicates only ack
		ack, err := b.book.Receive(o.Envelope)
		if err != nil || ack == nil {
			t.Fatalf("delivering again after the crash: %v", err)
		}
		if _, err := a.book.Receive(ack); err != nil {
			t.Fatal(err)
		}
	}
	if v := l.show(b, id); len(v.Messages) != total {
		t.Fatalf("%d messages after the crash and re-delivery, want %d", len(v.Messages), total)
	}
	if r := a.book.Recipients(); len(r) != 0 {
		t.Fatalf("alice's outbox is not empty: %v", r)
	}
}

// TestMain runs the child of TestCrashKill when asked to.
func TestMain(m *testing.M) {
	if arg := os.Getenv(crashEnv); arg != "" {
		if err := crashChild(arg); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashChild is the process TestCrashKill kills: it receives the
// envelopes and says which it acknowledged.
func crashChild(arg string) error {
	dir, path, _ := strings.Cut(arg, "|")
	k, err := seed.DeriveUser(seedOf("bob"))
	if err != nil {
		return err
	}
	d, err := makeDevice(&user{name: "bob", key: k}, 0, path)
	if err != nil {
		return err
	}
	st, err := store.Open(d.path)
	if err != nil {
		return err
	}
	book, err := Open(Config{Store: st, Self: d.self, Log: quiet})
	if err != nil {
		return err
	}
	list, err := os.ReadFile(filepath.Join(dir, "envelopes"))
	if err != nil {
		return err
	}
	for i := 0; len(list) > 4; i++ {
		n := binary.BigEndian.Uint32(list)
		env := list[4 : 4+n]
		list = list[4+n:]
		if _, err := book.Receive(env); err != nil {
			return err
		}
		fmt.Fprintf(os.Stdout, "acked %d\n", i)
	}
	time.Sleep(time.Minute) // the parent kills us before
	return nil
}
