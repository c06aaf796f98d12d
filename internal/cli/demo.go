package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kith-project/kith/seed"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/launch"
	"github.com/spf13/cobra"
)

func newDemoCmd(g *globals) *cobra.Command {
	var (
		dir  string
		keep bool
	)
	cmd := &cobra.Command{
		Use:   "demo [--dir DIR] [--keep]",
		Short: "Run kith's user stories on this machine, narrated, with real agents on 127.0.0.x",
		Long: `demo walks through kith's user stories with real kith processes, each device
with its own home folder under DIR and its own agent on a 127.0.0.x address:

  1. a new identity, and a device restored from its seed phrase;
  2. two people pairing in person by scanning each other's QR codes;
  3. a restored device joining its owner as an own device: the two form one
     Raft cluster and list the same roster;
  4. presence: heartbeats, RTT and clock offsets, and a device that moves.

Everything it starts is stopped at the end; DIR is removed unless --keep.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding the kith binary: %w", err)
			}
			if dir == "" {
				if dir, err = os.MkdirTemp("", "kith-demo-"); err != nil {
					return err
				}
			} else if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			// The folder holds private keys: it goes on every way out.
			// SIGINT and SIGTERM cancel the demo instead of killing it, and
			// so does SIGPIPE, which a closed stdout ("kith demo | head")
			// raises, so that the deferred cleanup runs.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
			defer stop()
			d := &demo{bin: self, dir: dir, out: g.env.Stdout}
			defer func() {
				d.stopAll()
				if keep {
					fmt.Fprintf(d.out, "\nThe homes and agent logs are kept in %s.\n", dir)
				} else {
					os.RemoveAll(dir)
				}
			}()
			err = d.run(ctx)
			if ctx.Err() != nil && cmd.Context().Err() == nil {
				return errors.New("the demo was interrupted; everything it started is stopped and its folder removed")
			}
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "folder for the demo's homes and logs (default: a new temporary folder)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the folder afterwards")
	return cmd
}

// demo drives kith processes the way a user would.
type demo struct {
	bin, dir string
	out      io.Writer
	agents   []*launch.Process
	step     int
	// ctx ends the kith commands the demo runs when it is interrupted.
	ctx context.Context
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, format+"\n", args...)
}

func (d *demo) story(title string) {
	d.step++
	d.say("\n== %d. %s ==", d.step, title)
}

func (d *demo) home(name string) string { return filepath.Join(d.dir, name) }

// kith runs one kith command for the device name and decodes its JSON.
func (d *demo) kith(name, stdin string, out any, args ...string) error {
	full := append([]string{"--home", d.home(name), "--json"}, args...)
	cmd := exec.CommandContext(d.ctx, d.bin, full...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = demoEnv()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kith %s (%s): %v: %s", strings.Join(args, " "), name, err, strings.TrimSpace(stderr.String()))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(stdout.Bytes(), out)
}

func demoEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KITH_") {
			env = append(env, kv)
		}
	}
	return env
}

// start runs an agent for the device name on host and waits until it
// answers.
func (d *demo) start(ctx context.Context, name, host string, flags ...string) (string, error) {
	addr, err := freeUDP(host)
	if err != nil {
		return "", fmt.Errorf("%w (on macOS, add the address first: sudo ifconfig lo0 alias %s)", err, host)
	}
	logf, err := os.Create(filepath.Join(d.dir, name+".log"))
	if err != nil {
		return "", err
	}
	// The agent writes to its own copy of the file.
	defer logf.Close()
	p, err := launch.Start(context.Background(), launch.Spec{
		Binary: d.bin,
		Home:   d.home(name),
		Listen: addr,
		Args:   flags,
		Env:    demoEnv(),
		Stdout: logf,
	})
	if err != nil {
		return "", err
	}
	d.agents = append(d.agents, p)
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.WaitReady(rctx); errors.Is(err, launch.ErrExited) {
		return "", fmt.Errorf("the agent of %s exited; see %s", name, logf.Name())
	} else if err != nil {
		return "", fmt.Errorf("the agent of %s did not start: %v", name, err)
	}
	return addr, nil
}

func (d *demo) stopAll() {
	for _, p := range d.agents {
		p.Stop()
	}
	d.agents = nil
}

func freeUDP(host string) (string, error) {
	c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("no UDP port on %s: %w", host, err)
	}
	defer c.Close()
	return c.LocalAddr().String(), nil
}

type demoID struct {
	UserID      seed.UserPublic   `json:"user_id"`
	DeviceID    seed.DevicePublic `json:"device_id"`
	DeviceIndex uint32            `json:"device_index"`
	Name        string            `json:"name"`
	Mnemonic    string            `json:"mnemonic"`
}

func (d *demo) run(ctx context.Context) error {
	d.ctx = ctx
	d.say("kith demo: every device below is a separate kith process with its own home in %s.", d.dir)

	d.story("Restoring a node from a seed phrase")
	var alice, alicePhone, aliceAgain demoID
	if err := d.kith("alice-laptop", "", &alice, "init", "--name", "alice-laptop"); err != nil {
		return err
	}
	words := strings.Fields(alice.Mnemonic)
	d.say("alice runs `kith init` on her laptop. It shows her %d words once; she writes them down:", len(words))
	d.say("  %s … %s", strings.Join(words[:3], " "), strings.Join(words[len(words)-3:], " "))
	d.say("  user   %s\n  device %s (index 0)", alice.UserID, alice.DeviceID)
	if err := d.kith("alice-laptop-copy", alice.Mnemonic, &aliceAgain, "restore", "--device", "0", "--name", "alice-laptop"); err != nil {
		return err
	}
	d.say("Her laptop is wiped. She types the words into `kith restore --device 0` on the new disk:")
	d.say("  user   %s  %s\n  device %s  %s", aliceAgain.UserID, same(aliceAgain.UserID.Equal(alice.UserID)), aliceAgain.DeviceID, same(aliceAgain.DeviceID.Equal(alice.DeviceID)))
	if !aliceAgain.UserID.Equal(alice.UserID) || !aliceAgain.DeviceID.Equal(alice.DeviceID) {
		return errors.New("the restored device has another identity")
	}
	if err := d.kith("alice-phone", alice.Mnemonic, &alicePhone, "restore", "--device", "1", "--name", "alice-phone"); err != nil {
		return err
	}
	d.say("She also restores her phone as device 1: same user, its own device ID %s.", alicePhone.DeviceID.ID()[:16])

	d.story("Pairing phones in person")
	var bob demoID
	if err := d.kith("bob-phone", "", &bob, "init", "--name", "bob-phone"); err != nil {
		return err
	}
	aAddr, err := d.start(ctx, "alice-laptop", "127.0.0.2", "--heartbeat", "500ms", "--raft-profile", "lan")
	if err != nil {
		return err
	}
	bAddr, err := d.start(ctx, "bob-phone", "127.0.0.3", "--heartbeat", "500ms", "--raft-profile", "lan")
	if err != nil {
		return err
	}
	d.say("alice's agent runs on %s, bob's on %s.", aAddr, bAddr)
	var aShow, bShow control.ShowResult
	aPNG, bPNG := filepath.Join(d.dir, "alice.png"), filepath.Join(d.dir, "bob.png")
	if err := d.kith("alice-laptop", "", &aShow, "pair", "show", "--png", aPNG); err != nil {
		return err
	}
	if err := d.kith("bob-phone", "", &bShow, "pair", "show", "--png", bPNG); err != nil {
		return err
	}
	d.say("Each shows a QR code (`kith pair show --png`); the photos are %s and %s.", filepath.Base(aPNG), filepath.Base(bPNG))
	var s1, s2 control.ScanResult
	if err := d.kith("alice-laptop", "", &s1, "pair", "scan", "--no-wait", bPNG); err != nil {
		return err
	}
	d.say("alice scans bob's code: %s, check code %s.", s1.Status, s1.SAS)
	if err := d.kith("bob-phone", "", &s2, "pair", "scan", aPNG); err != nil {
		return err
	}
	d.say("bob scans alice's code: %s with %s %q, check code %s.", s2.Status, s2.Kind, s2.Name, s2.SAS)
	d.say("They read the codes out loud: %s", same(s1.SAS == s2.SAS))
	if s1.SAS != s2.SAS || s2.Status != "paired" {
		return errors.New("pairing did not complete with equal check codes")
	}

	d.story("A restored phone joins its owner's devices")
	pAddr, err := d.start(ctx, "alice-phone", "127.0.0.4", "--heartbeat", "500ms", "--raft-profile", "lan")
	if err != nil {
		return err
	}
	var pShow control.ShowResult
	if err := d.kith("alice-phone", "", &pShow, "pair", "show"); err != nil {
		return err
	}
	if err := d.kith("alice-laptop", "", &aShow, "pair", "show"); err != nil {
		return err
	}
	if err := d.kith("alice-phone", "", &s1, "pair", "scan", "--no-wait", "--code", aShow.Code); err != nil {
		return err
	}
	if err := d.kith("alice-laptop", "", &s2, "pair", "scan", "--code", pShow.Code); err != nil {
		return err
	}
	d.say("alice's phone (%s) and laptop scan each other: %s, kind %q: it is her own device, not a friend.", pAddr, s2.Status, s2.Kind)
	if err := d.waitCluster(ctx, []string{"alice-laptop", "alice-phone"}); err != nil {
		return err
	}
	d.say("The phone joins the laptop's own cluster (Raft) as a non-voter: two voters would be worse than one.")
	for _, name := range []string{"alice-laptop", "alice-phone"} {
		if err := d.printDevices(name); err != nil {
			return err
		}
	}
	var fs []control.FriendView
	if err := d.kith("alice-phone", "", &fs, "friends"); err != nil {
		return err
	}
	if len(fs) != 1 || !fs[0].UserID.Equal(bob.UserID) {
		return errors.New("the phone does not list bob, paired on the laptop, as a friend")
	}
	d.say("Both list the same devices, and bob, paired on the laptop, is a friend on the phone too: the roster is replicated.")

	d.story("Presence: heartbeats, clock offsets, and a device that moves")
	for _, dev := range []seed.DevicePublic{bob.DeviceID, alicePhone.DeviceID} {
		if err := d.waitOnline(ctx, "alice-laptop", dev); err != nil {
			return err
		}
	}
	if err := d.printStatus("alice-laptop"); err != nil {
		return err
	}
	d.say("bob's phone leaves the café Wi-Fi: its agent stops and comes back on another address.")
	d.stopOne(1)
	nAddr, err := d.start(ctx, "bob-phone", "127.0.0.9", "--heartbeat", "500ms", "--raft-profile", "lan")
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := d.waitAddr(ctx, "alice-laptop", bob.DeviceID, nAddr); err != nil {
		return err
	}
	d.say("alice's laptop follows bob to %s within %v, with no server in between.", nAddr, time.Since(t0).Round(100*time.Microsecond))
	if err := d.printStatus("alice-laptop"); err != nil {
		return err
	}
	if err := d.debate(ctx, alice, bob); err != nil {
		return err
	}
	d.say("\nDone. Every device kept its keys from the seed phrase; nothing went through a server.")
	return nil
}

// debate is the story of a debate decided by a quorum rule, among alice,
// bob and carol, who is alice's friend but not bob's.
func (d *demo) debate(ctx context.Context, alice, bob demoID) error {
	d.story("Starting a debate conversation with a quorum rule")
	var carol demoID
	if err := d.kith("carol-laptop", "", &carol, "init", "--name", "carol-laptop"); err != nil {
		return err
	}
	if _, err := d.start(ctx, "carol-laptop", "127.0.0.5", "--heartbeat", "500ms", "--raft-profile", "lan"); err != nil {
		return err
	}
	var cShow, aShow control.ShowResult
	var s1, s2 control.ScanResult
	if err := d.kith("carol-laptop", "", &cShow, "pair", "show"); err != nil {
		return err
	}
	if err := d.kith("alice-laptop", "", &aShow, "pair", "show"); err != nil {
		return err
	}
	if err := d.kith("alice-laptop", "", &s1, "pair", "scan", "--no-wait", "--code", cShow.Code); err != nil {
		return err
	}
	if err := d.kith("carol-laptop", "", &s2, "pair", "scan", "--code", aShow.Code); err != nil {
		return err
	}
	d.say("carol pairs with alice (check code %s). She has never met bob: they are not friends.", s2.SAS)
	const rule = `quorum(2/3) && majority("yes")`
	var created control.ConvNewResult
	if err := d.kith("alice-laptop", "", &created, "conv", "new", "--topic", "Should we build the greenhouse?", "--pattern", "debate",
		"--with", bob.UserID.ID()+","+carol.UserID.ID(), "--rule", rule); err != nil {
		return err
	}
	id := created.ConversationID
	d.say("alice starts a debate with both: `kith conv new --pattern debate --rule '%s'`.", rule)
	d.say("The rule holds once two thirds of the members have voted and more than half of the votes say yes.")
	d.say("The genesis carries every member's signed roster, so bob and carol can check and seal to each other.")
	for _, name := range []string{"bob-phone", "carol-laptop"} {
		if err := d.waitConv(ctx, name, id, func(v control.ConvView) bool { return true }); err != nil {
			return err
		}
	}
	if err := d.kith("bob-phone", "", nil, "conv", "post", id[:12], "Yes: tomatoes in winter, and it pays for itself", "--kind", "position"); err != nil {
		return err
	}
	if err := d.kith("carol-laptop", "", nil, "conv", "post", id[:12], "It shades the roses; build it by the shed", "--kind", "argument"); err != nil {
		return err
	}
	d.say("bob posts a position and carol an argument; carol's reaches bob through alice, sealed end to end.")
	if err := d.waitConv(ctx, "alice-laptop", id, func(v control.ConvView) bool { return len(v.Messages) >= 2 }); err != nil {
		return err
	}
	for _, name := range []string{"alice-laptop", "bob-phone"} {
		if err := d.kith(name, "", nil, "conv", "vote", id[:12], "yes"); err != nil {
			return err
		}
	}
	d.say("alice and bob vote yes: 2 of 3 have voted, all of them yes.")
	t0 := time.Now()
	var outcomes []string
	for _, name := range []string{"alice-laptop", "bob-phone", "carol-laptop", "alice-phone"} {
		var v control.ConvView
		err := d.waitConvView(ctx, name, id, func(cv control.ConvView) bool { return cv.Outcome != nil }, &v)
		if err != nil {
			return err
		}
		outcomes = append(outcomes, v.Outcome.MessageSet)
	}
	d.say("Every member device, alice's phone too, holds the signed outcome within %v; the same message set everywhere: %s",
		time.Since(t0).Round(time.Millisecond), same(outcomes[0] == outcomes[1] && outcomes[1] == outcomes[2] && outcomes[2] == outcomes[3]))
	d.say("carol's `kith conv show %s`:", id[:8])
	cmd := exec.CommandContext(ctx, d.bin, "--home", d.home("carol-laptop"), "conv", "show", id[:8])
	cmd.Env = demoEnv()
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("kith conv show: %w", err)
	}
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		d.say("  | %s", l)
	}
	var late bytes.Buffer
	cmd = exec.CommandContext(ctx, d.bin, "--home", d.home("carol-laptop"), "conv", "vote", id[:8], "no")
	cmd.Env, cmd.Stderr = demoEnv(), &late
	if err := cmd.Run(); err == nil {
		return errors.New("a vote after the outcome was taken")
	}
	d.say("carol's vote after the outcome is refused: %s", strings.TrimPrefix(strings.SplitN(late.String(), "\n", 2)[0], "kith: "))
	return nil
}

// waitConv waits until device name holds conversation id and ok holds.
func (d *demo) waitConv(ctx context.Context, name, id string, ok func(control.ConvView) bool) error {
	var v control.ConvView
	return d.waitConvView(ctx, name, id, ok, &v)
}

func (d *demo) waitConvView(ctx context.Context, name, id string, ok func(control.ConvView) bool, v *control.ConvView) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		c := control.NewClient(d.home(name))
		cv, err := c.ConvShow(ctx, id)
		if err == nil && ok(cv) {
			*v = cv
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for the conversation: %v (last: %v)", name, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func same(ok bool) string {
	if ok {
		return "(the same)"
	}
	return "(DIFFERENT)"
}

func (d *demo) stopOne(i int) { d.agents[i].Stop() }

func (d *demo) status(name string) (control.Status, error) {
	return control.NewClient(d.home(name)).Status(context.Background())
}

func (d *demo) waitOnline(ctx context.Context, name string, device seed.DevicePublic) error {
	return d.wait(ctx, name, device, func(p control.PeerStatus) bool { return p.Online && p.RTTMillis != nil })
}

func (d *demo) waitAddr(ctx context.Context, name string, device seed.DevicePublic, addr string) error {
	return d.wait(ctx, name, device, func(p control.PeerStatus) bool { return p.Addr == addr })
}

// wait waits until name's agent lists device in a state ok accepts.
func (d *demo) wait(ctx context.Context, name string, device seed.DevicePublic, ok func(control.PeerStatus) bool) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := launch.WaitStatus(wctx, control.NewClient(d.home(name)), func(st control.Status) bool {
		p, found := st.Peer(device)
		return found && ok(p)
	})
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("%s's agent did not see the expected peer state within 30 s; see the logs in %s", name, d.dir)
	}
	return nil
}

func (d *demo) printStatus(name string) error {
	st, err := d.status(name)
	if err != nil {
		return err
	}
	d.say("\n$ kith status   (on %s)", name)
	var buf bytes.Buffer
	printStatus(&buf, st, time.Now())
	for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		d.say("  %s", line)
	}
	return nil
}

// waitCluster waits until the agents of names agree on one leader and have
// nothing pending.
func (d *demo) waitCluster(ctx context.Context, names []string) error {
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		var leader string
		ok := true
		for i, name := range names {
			st, err := d.status(name)
			c := st.Cluster
			if err != nil || c.Leader == "" || c.Pending != 0 || len(c.Voters)+len(c.Nonvoters) != len(names) || (i > 0 && c.Leader != leader) {
				ok = false
				break
			}
			leader = c.Leader
		}
		if ok {
			return nil
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("the devices did not form one cluster within 60 s; see the logs in %s", d.dir)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *demo) printDevices(name string) error {
	ds, err := control.NewClient(d.home(name)).Devices(context.Background())
	if err != nil {
		return err
	}
	d.say("\n$ kith devices   (on %s)", name)
	var buf bytes.Buffer
	printDevices(&buf, ds)
	for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		d.say("  %s", line)
	}
	return nil
}
