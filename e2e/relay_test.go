package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
)

// Three kith processes: alice asks for a relayed path to bob through rita
// ("kith relay bob --via rita --echo MARKER"). The echo crosses rita's agent
// twice; both ends then show the path "relay" via rita; rita's log never
// holds the marker, and (as root) neither does any readable page of her
// agent's memory, while the same scan finds it in an end's.
func TestRelayOverTheBinary(t *testing.T) {
	hb := []string{"--heartbeat", testT.String()}
	alice := newPerson(t, "alice", "127.0.0.2", hb...)
	bob := newPerson(t, "bob", "127.0.0.3", hb...)
	rita := newPerson(t, "rita", "127.0.0.4", append(hb, "--relay", "friends")...)
	pair(t, alice, bob)
	pair(t, alice, rita)
	pair(t, bob, rita)
	for _, p := range []*person{alice, bob} {
		waitPeer(t, p, rita.id.DeviceID, time.Minute, "rita online", func(ps control.PeerStatus) bool { return ps.Online })
	}

	var mk [12]byte
	rand.Read(mk[:])
	marker := "KITH-E2E-PLAINTEXT-" + hex.EncodeToString(mk[:])
	var res control.RelayResult
	for range 3 {
		alice.JSON(&res, "", "relay", "bob", "--via", "rita", "--echo", marker)
	}
	if res.Path != "relay" || res.Via != "rita" || res.EchoMillis == nil || res.DeviceID.ID() != bob.id.DeviceID {
		t.Fatalf("kith relay: %+v", res)
	}
	relayed := func(ps control.PeerStatus) bool { return ps.Online && ps.Path == "relay" && ps.Via == "rita" }
	waitPeer(t, alice, bob.id.DeviceID, time.Minute, "bob relayed via rita", relayed)
	waitPeer(t, bob, alice.id.DeviceID, time.Minute, "alice relayed via rita", relayed)
	out := alice.Run("", "relay", "bob", "--via", "rita")
	if out.Code != 0 || !strings.Contains(out.Stdout, "relay via rita") {
		t.Fatalf("kith relay (text): %s", out)
	}
	if bad := alice.Run("", "relay", "nobody"); bad.Code == 0 || !strings.Contains(bad.Stderr, "nobody") {
		t.Fatalf("kith relay nobody: %s", bad)
	}

	if !rita.agent.Contains("relay: session open") {
		t.Fatalf("rita's log does not say she relays:\n%s", rita.agent.Log())
	}
	if rita.agent.Contains(marker) {
		t.Fatal("rita's log holds the plaintext marker")
	}

	t.Run("memory", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("reading another process's memory (/proc/PID/mem) needs root")
		}
		ends := 0
		for _, p := range []*person{alice, bob} {
			if n := scanMemory(t, agentPID(t, p), []byte(marker)); n > 0 {
				ends++
			}
		}
		if ends == 0 {
			t.Fatal("the memory scan finds the marker in neither end's agent: it would prove nothing about rita's")
		}
		if n := scanMemory(t, agentPID(t, rita), []byte(marker)); n != 0 {
			t.Fatalf("rita's agent holds the plaintext marker %d times in memory", n)
		}
	})
}

// maxRegion skips mappings larger than this: the race detector's shadow
// memory (terabytes, reserved but never touched) is no place the agent
// keeps data in.
const maxRegion = 4 << 30

// scanMemory counts the occurrences of marker in the readable mappings of
// process pid, read through /proc/PID/mem.
func scanMemory(t *testing.T, pid int, marker []byte) int {
	t.Helper()
	maps, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer maps.Close()
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	var regions, scanned int64
	count := 0
	buf := make([]byte, 1<<20+len(marker))
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !strings.HasPrefix(f[1], "r") || (len(f) >= 6 && (f[5] == "[vvar]" || f[5] == "[vsyscall]" || f[5] == "[vvar_vclock]")) {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start || end-start > maxRegion {
			continue
		}
		regions++
		// Chunks overlap by the marker's length, so that none is missed
		// across a boundary.
		for off := start; off < end; {
			n := min(uint64(len(buf)), end-off)
			m, err := mem.ReadAt(buf[:n], int64(off))
			if m > 0 {
				count += bytes.Count(buf[:m], marker)
				scanned += int64(m)
			}
			if err != nil && err != io.EOF {
				break // an unreadable page: the rest of this mapping is skipped
			}
			if off+n >= end {
				break
			}
			off += n - uint64(len(marker))
		}
	}
	if regions == 0 || scanned == 0 {
		t.Fatalf("no readable memory in process %d", pid)
	}
	t.Logf("process %d: %d mappings, %d MiB read, %d markers", pid, regions, scanned>>20, count)
	return count
}
