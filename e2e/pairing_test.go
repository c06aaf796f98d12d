package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/kithtest"
	"github.com/kith-project/kith/internal/transport"
)

type showResult struct {
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
}

type scanResult struct {
	UserID string `json:"user_id"`
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	SAS    string `json:"sas"`
	Status string `json:"status"`
}

type friendView struct {
	UserID  string `json:"user_id"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	SAS     string `json:"sas"`
	Devices []struct {
		DeviceID string `json:"device_id"`
		Addr     string `json:"addr"`
		Online   bool   `json:"online"`
	} `json:"devices"`
}

// person is one user with one device running an agent.
type person struct {
	*kithtest.Device
	id    identity
	agent *kithtest.Agent
}

func newPerson(t testing.TB, name, host string, runFlags ...string) *person {
	t.Helper()
	d := kithtest.NewDevice(t)
	var id identity
	d.JSON(&id, "", "init", "--name", name)
	p := &person{Device: d, id: id}
	p.agent = d.Start(kithtest.FreeAddr(t, host), runFlags...)
	return p
}

func (p *person) show(t testing.TB, args ...string) (showResult, string) {
	t.Helper()
	png := filepath.Join(t.TempDir(), "invite.png")
	var s showResult
	p.JSON(&s, "", append([]string{"pair", "show", "--png", png}, args...)...)
	if !strings.HasPrefix(s.Code, "KITH2:") {
		t.Fatalf("pair show gave code %q", s.Code)
	}
	return s, png
}

func (p *person) friends(t *testing.T) []friendView {
	t.Helper()
	var fs []friendView
	p.JSON(&fs, "", "friends")
	return fs
}

func findFriend(fs []friendView, user string) (friendView, bool) {
	for _, f := range fs {
		if f.UserID == user {
			return f, true
		}
	}
	return friendView{}, false
}

// pair makes a and b friends through PNG files and returns the SAS. The
// first scan does not wait (--no-wait), as a script that drives both
// sides must do.
func pair(t testing.TB, a, b *person) string {
	t.Helper()
	_, aPNG := a.show(t)
	_, bPNG := b.show(t)
	var first, second scanResult
	a.JSON(&first, "", "pair", "scan", "--no-wait", bPNG)
	if first.Status != "waiting" || first.UserID != b.id.UserID || first.SAS == "" {
		t.Fatalf("first scan: %+v, want waiting for %s with a SAS", first, b.id.UserID)
	}
	b.JSON(&second, "", "pair", "scan", aPNG)
	if second.Status != "paired" || second.Kind != "friend" || second.UserID != a.id.UserID {
		t.Fatalf("second scan: %+v, want paired friend %s", second, a.id.UserID)
	}
	if second.SAS != first.SAS {
		t.Fatalf("the two screens show different check codes: %q and %q", first.SAS, second.SAS)
	}
	return second.SAS
}

func TestPairingThroughFiles(t *testing.T) {
	alice := newPerson(t, "alice", "127.0.0.2", "--heartbeat", "300ms")
	bob := newPerson(t, "bob", "127.0.0.3", "--heartbeat", "300ms")
	sas := pair(t, alice, bob)

	check := func(p *person, other *person) {
		t.Helper()
		f, ok := findFriend(p.friends(t), other.id.UserID)
		if !ok {
			t.Fatalf("%s does not list %s as a friend", p.id.Name, other.id.Name)
		}
		if f.Status != "friend" || f.SAS != sas || f.Name != other.id.Name {
			t.Fatalf("%s's view of %s: %+v (want status friend, SAS %q)", p.id.Name, other.id.Name, f, sas)
		}
		if len(f.Devices) != 1 || f.Devices[0].DeviceID != other.id.DeviceID || f.Devices[0].Addr != other.agent.Addr {
			t.Fatalf("%s's view of %s's devices: %+v, want %s at %s", p.id.Name, other.id.Name, f.Devices, other.id.DeviceID, other.agent.Addr)
		}
	}
	check(alice, bob)
	check(bob, alice)

	// A restart of either agent keeps the friendship, and they reconnect.
	for _, p := range []*person{alice, bob} {
		if err := p.agent.Stop(); err != nil {
			t.Fatalf("stopping %s: %v\n%s", p.id.Name, err, p.agent.Log())
		}
		p.agent = p.Start(p.agent.Addr, "--heartbeat", "300ms")
	}
	check(alice, bob)
	check(bob, alice)
	for _, pp := range [][2]*person{{alice, bob}, {bob, alice}} {
		p, other := pp[0], pp[1]
		kithtest.Eventually(t, 20*time.Second, p.id.Name+" sees "+other.id.Name+" online", func() error {
			f, _ := findFriend(p.friends(t), other.id.UserID)
			if len(f.Devices) == 1 && f.Devices[0].Online {
				return nil
			}
			return fmt.Errorf("devices: %+v", f.Devices)
		})
	}
}

func TestPairingRefusals(t *testing.T) {
	alice := newPerson(t, "alice", "127.0.0.2")
	bob := newPerson(t, "bob", "127.0.0.3")
	carol := newPerson(t, "carol", "127.0.0.4")

	refused := func(p *person, reason string, args ...string) {
		t.Helper()
		res := p.Run("", args...)
		if res.Code != 2 || !strings.Contains(res.Stderr, "("+reason+")") {
			t.Fatalf("kith %s: want exit 2 with reason %q, got %s", strings.Join(args, " "), reason, res)
		}
	}

	t.Run("malformed", func(t *testing.T) {
		refused(bob, "malformed", "pair", "scan", "--code", "KITH1:NOTANINVITE")
		refused(bob, "malformed", "pair", "scan", "--code", "hello")
	})
	t.Run("tampered", func(t *testing.T) {
		s, _ := alice.show(t)
		code := []byte(s.Code)
		i := len("KITH2:") + 40 // inside the device ID: the checksum catches it
		if code[i] == 'A' {
			code[i] = 'B'
		} else {
			code[i] = 'A'
		}
		bob.show(t)
		refused(bob, "tampered", "pair", "scan", "--code", string(code))
	})
	t.Run("expired", func(t *testing.T) {
		s, _ := alice.show(t, "--ttl", "1s")
		bob.show(t)
		for time.Now().Before(s.ExpiresAt.Add(100 * time.Millisecond)) {
			time.Sleep(50 * time.Millisecond)
		}
		refused(bob, "expired", "pair", "scan", "--code", s.Code)
	})
	t.Run("reused", func(t *testing.T) {
		_, aPNG := alice.show(t)
		_, bPNG := bob.show(t)
		alice.JSON(new(scanResult), "", "pair", "scan", "--no-wait", bPNG)
		bob.JSON(new(scanResult), "", "pair", "scan", aPNG)
		refused(bob, "reused", "pair", "scan", aPNG)
		// A third person cannot use alice's spent invite either.
		carol.show(t)
		refused(carol, "reused", "pair", "scan", aPNG)
	})
	t.Run("blocked", func(t *testing.T) {
		var st struct{ UserID, Status string }
		carol.JSON(&st, "", "friends", "block", alice.id.UserID)
		if st.Status != "blocked" {
			t.Fatalf("block: %+v", st)
		}
		s, _ := alice.show(t)
		carol.show(t)
		refused(carol, "blocked", "pair", "scan", "--code", s.Code)
		if f, ok := findFriend(carol.friends(t), alice.id.UserID); !ok || f.Status != "blocked" || len(f.Devices) != 0 {
			t.Fatalf("carol stores %+v for blocked alice; want only the block", f)
		}
	})
	t.Run("own code", func(t *testing.T) {
		s, _ := alice.show(t)
		refused(alice, "foreign", "pair", "scan", "--code", s.Code)
	})
}

func TestQRToolInterop(t *testing.T) {
	zbar, zerr := exec.LookPath("zbarimg")
	qrenc, qerr := exec.LookPath("qrencode")
	if zerr != nil || qerr != nil {
		t.Skip("zbarimg or qrencode is not installed (apt-get install zbar-tools qrencode); skipping the QR interop test")
	}
	alice := newPerson(t, "alice", "127.0.0.2")
	bob := newPerson(t, "bob", "127.0.0.3")
	aShow, aPNG := alice.show(t)
	bShow, _ := bob.show(t)

	// The stock zbarimg reads kith's PNG.
	out, err := exec.Command(zbar, "--quiet", "--raw", aPNG).Output()
	if err != nil {
		t.Fatalf("zbarimg %s: %v", aPNG, err)
	}
	if got := strings.TrimSpace(string(out)); got != aShow.Code {
		t.Fatalf("zbarimg read %q, pair show said %q", got, aShow.Code)
	}
	// kith reads a PNG made by the stock qrencode.
	bPNG := filepath.Join(t.TempDir(), "qrencode.png")
	if out, err := exec.Command(qrenc, "-o", bPNG, bShow.Code).CombinedOutput(); err != nil {
		t.Fatalf("qrencode: %v %s", err, out)
	}
	var r scanResult
	alice.JSON(&r, "", "pair", "scan", "--no-wait", bPNG)
	if r.UserID != bob.id.UserID || r.Status != "waiting" {
		t.Fatalf("scanning qrencode's PNG: %+v", r)
	}
}

func TestUnknownPeersAreRefused(t *testing.T) {
	alice := newPerson(t, "alice", "127.0.0.2")
	ap := netip.MustParseAddrPort(alice.agent.Addr)
	var aliceKey ed25519.PublicKey
	{
		var id identity
		alice.JSON(&id, "", "id")
		aliceKey = mustDecodeHex(t, id.DeviceID)
	}
	// A QUIC handshake from a key alice does not know is refused.
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	tr, err := transport.Listen(transport.Config{
		Key: stranger, Listen: "127.0.0.9:0",
		Authorize: func(ed25519.PublicKey, netip.AddrPort, transport.Direction) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s, err := tr.OpenStream(ctx, ap, aliceKey, 0); err == nil {
		s.Close()
		t.Fatal("a stranger's QUIC handshake was accepted")
	}

	// Garbage datagrams get no reply at all.
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.9:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	junk := [][]byte{{0x00}, {0x42, 1, 2, 3}, make([]byte, 1200), []byte("GET / HTTP/1.1\r\n\r\n")}
	random := make([]byte, 300)
	rand.Read(random)
	junk = append(junk, random)
	for _, j := range junk {
		if _, err := conn.WriteToUDPAddrPort(j, ap); err != nil {
			t.Fatal(err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 2048)
	if n, _, err := conn.ReadFromUDPAddrPort(buf); err == nil {
		t.Fatalf("the agent answered garbage with %d bytes", n)
	}
	// The agent is healthy: it still pairs.
	bob := newPerson(t, "bob", "127.0.0.3")
	pair(t, alice, bob)
	if !alice.agent.Running() {
		t.Fatal("the agent died")
	}
}

type statusView struct {
	UserID      string   `json:"user_id"`
	DeviceID    string   `json:"device_id"`
	Listen      string   `json:"listen"`
	PublicAddrs []string `json:"public_addrs"`
	Peers       []struct {
		DeviceID      string   `json:"device_id"`
		UserID        string   `json:"user_id"`
		Kind          string   `json:"kind"`
		Addr          string   `json:"addr"`
		LastSeen      *string  `json:"last_seen"`
		Online        bool     `json:"online"`
		RTTMillis     *float64 `json:"rtt_ms"`
		ClockOffsetMs *float64 `json:"clock_offset_ms"`
	} `json:"peers"`
	Cluster struct {
		State     string   `json:"state"`
		Leader    string   `json:"leader"`
		Voters    []string `json:"voters"`
		Nonvoters []string `json:"nonvoters"`
	} `json:"cluster"`
}

func (p *person) status(t *testing.T) statusView {
	t.Helper()
	var st statusView
	p.JSON(&st, "", "status")
	return st
}

// A device restored from the same phrase pairs as an own device, not a
// friend.
func TestPairingOwnDevice(t *testing.T) {
	laptop := newPerson(t, "laptop", "127.0.0.2")
	phoneDev := kithtest.NewDevice(t)
	var pid identity
	phoneDev.JSON(&pid, laptop.id.Mnemonic, "restore", "--device", "1", "--name", "phone")
	phone := &person{Device: phoneDev, id: pid}
	phone.agent = phoneDev.Start(kithtest.FreeAddr(t, "127.0.0.3"))

	_, lPNG := laptop.show(t)
	_, pPNG := phone.show(t)
	var r1, r2 scanResult
	phone.JSON(&r1, "", "pair", "scan", "--no-wait", lPNG)
	laptop.JSON(&r2, "", "pair", "scan", pPNG)
	if r1.Kind != "own" || r2.Kind != "own" || r2.Status != "paired" || r1.SAS != r2.SAS {
		t.Fatalf("own-device pairing: %+v, %+v", r1, r2)
	}
	if fs := laptop.friends(t); len(fs) != 0 {
		t.Fatalf("an own device is listed among friends: %+v", fs)
	}
	st := laptop.status(t)
	if len(st.Peers) != 1 || st.Peers[0].Kind != "own" || st.Peers[0].DeviceID != pid.DeviceID || st.Peers[0].UserID != laptop.id.UserID {
		t.Fatalf("laptop's status peers: %+v", st.Peers)
	}
}

func TestCommandsWithoutAgent(t *testing.T) {
	d := kithtest.NewDevice(t)
	d.JSON(new(identity), "", "init")
	for _, args := range [][]string{{"status"}, {"friends"}, {"pair", "show"}} {
		res := d.Run("", args...)
		if res.Code != 1 || !strings.Contains(res.Stderr, "no agent is running") || !strings.Contains(res.Stderr, "run") {
			t.Fatalf("kith %s without an agent: %s", strings.Join(args, " "), res)
		}
	}
	// id still works without an agent, and with one.
	var id identity
	d.JSON(&id, "", "id")
	d.Start(kithtest.FreeAddr(t, "127.0.0.2"))
	var again identity
	d.JSON(&again, "", "id")
	if again.DeviceID != id.DeviceID {
		t.Fatalf("id through the agent: %+v vs %+v", again, id)
	}
	// A second agent on the same home is refused with the first one's pid.
	res := d.Run("", "run", "--listen", kithtest.FreeAddr(t, "127.0.0.2"))
	if res.Code != 1 || !strings.Contains(res.Stderr, "in use by pid") {
		t.Fatalf("a second agent on one home: %s", res)
	}
}

// The text forms of the agent commands, and the friend actions not covered
// above, over the real binary.
func TestTextOutputAndFriendActions(t *testing.T) {
	alice := newPerson(t, "alice", "127.0.0.2")
	bob := newPerson(t, "bob", "127.0.0.3")
	sas := pair(t, alice, bob)

	show := alice.Run("", "pair", "show")
	// Not on a terminal: the code as text, and no QR code drawn.
	if show.Code != 0 || !strings.Contains(show.Stdout, "KITH2:") || strings.ContainsAny(show.Stdout, "▀▄█\x1b") {
		t.Fatalf("pair show into a pipe should print the code as text and draw no QR code: %s", show)
	}
	fr := alice.Run("", "friends")
	if fr.Code != 0 || !strings.Contains(fr.Stdout, bob.id.UserID[:12]) || !strings.Contains(fr.Stdout, sas) || !strings.Contains(fr.Stdout, "bob") {
		t.Fatalf("friends table: %s", fr)
	}
	st := alice.Run("", "status")
	if st.Code != 0 || !strings.Contains(st.Stdout, "CLOCK") || !strings.Contains(st.Stdout, bob.agent.Addr) {
		t.Fatalf("status table: %s", st)
	}

	// A friend by name, or by the 12 characters the table shows.
	var res struct {
		UserID string `json:"user_id"`
		Status string `json:"status"`
	}
	alice.JSON(&res, "", "friends", "block", "bob")
	if res.Status != "blocked" || res.UserID != bob.id.UserID {
		t.Fatalf("block by name: %+v", res)
	}
	alice.JSON(&res, "", "friends", "unblock", bob.id.UserID[:12])
	if f, ok := findFriend(alice.friends(t), bob.id.UserID); !ok || f.Status != "friend" || len(f.Devices) != 1 {
		t.Fatalf("after unblock: %+v", f)
	}
	alice.JSON(&res, "", "friends", "remove", bob.id.UserID)
	if res.Status != "removed" || len(alice.friends(t)) != 0 {
		t.Fatalf("after remove: %+v, friends %+v", res, alice.friends(t))
	}
	if r := alice.Run("", "friends", "remove", bob.id.UserID); r.Code != 1 || !strings.Contains(r.Stderr, "no friend") {
		t.Fatalf("removing a stranger: %s", r)
	}
	if r := alice.Run("", "friends", "block", "not-a-user"); r.Code != 2 || !strings.Contains(r.Stderr, "64 hexadecimal") {
		t.Fatalf("blocking a malformed user ID: %s", r)
	}
}
