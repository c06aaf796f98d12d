// Package runcmd is "kith run": it loads the device and runs its agent in
// the foreground until SIGINT or SIGTERM.
//
// It is the one package of the command line that imports the agent, so
// that every other command depends only on the local API
// (internal/control). Package cli registers its command and lends it what
// it shares with the other commands through [Host].
package runcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kith-project/kith/agent"
	"github.com/kith-project/kith/internal/device"
	"github.com/kith-project/kith/internal/store"
	webconsole "github.com/kith-project/kith/internal/web"
	"github.com/kith-project/kith/seed"
	"github.com/spf13/cobra"
)

// Host is what the run command takes from the command line around it.
type Host interface {
	// OpenHome locks the home folder and opens its store; release lets go
	// of both.
	OpenHome() (dir string, st *store.Store, release func() error, err error)
	// LockPassphrase returns the lock passphrase of the keys in dir, from
	// the environment or asked for with prompt, checked; nil when the keys
	// are not sealed.
	LockPassphrase(dir, prompt string) ([]byte, error)
	// Emit prints v as JSON with --json, and as text otherwise.
	Emit(v any, text func(w io.Writer)) error
	// BadInput marks err as bad usage or bad input: exit status 2.
	BadInput(err error) error
	// Stderr is where the agent logs.
	Stderr() io.Writer
	// Version is this build's version, which the agent tells.
	Version() string
	// Getenv reads the environment, for the KITH_* variables that stand
	// for flags.
	Getenv(key string) string
}

// New returns the run command. Its caller sets Args.
func New(h Host) *cobra.Command {
	var (
		cfg      agent.Config
		stun     []string
		logLevel string
		skew     time.Duration
		relay    string
		rateS    string
		quotaS   string
		webAddr  string
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run this device's agent in the foreground until Ctrl-C (SIGINT) or SIGTERM",
		Long: `run starts the agent: it listens on one UDP port for QUIC connections from
your own devices and your friends' devices, sends heartbeats, and serves the
local control socket that every other command uses. It runs in the foreground
and logs to stderr; stop it with Ctrl-C or SIGTERM.

The lock passphrase, if this device's keys are sealed, comes from
KITH_PASSPHRASE or a prompt.

Every flag can also be set in the environment, as a service unit does:
KITH_LISTEN, KITH_HEARTBEAT, KITH_STUN (several separated by commas or
spaces), KITH_QUIET (true or false), KITH_PORTMAP (on or off),
KITH_INTRODUCE, KITH_LOG_LEVEL, KITH_RELAY, KITH_RELAY_RATE,
KITH_RELAY_QUOTA, KITH_ARCHIVE_IDLE, KITH_ARCHIVE_GONE, KITH_ARCHIVE_SETTLE,
KITH_ARCHIVE_EVERY and KITH_WEB. A flag given on the command line wins over its variable.

With --portmap=on (the default) the agent asks the default gateway for a
mapping of its UDP port with NAT-PMP or UPnP IGD, renews it and deletes it when it
stops; "kith netcheck" shows the mapping or why there is none. It asks
nothing when it listens on loopback.

--introduce says whom this device introduces to each other, so that two
devices behind NATs can open a direct path (hole punching): "own" (the
default) introduces two devices of which at least one is your own; "friends"
also introduces two of your friends' devices to each other, which tells each
that the other knows you and where it is; "off" introduces nobody.

Relay: when two devices cannot reach each other, one that both reach
forwards their encrypted datagrams. --relay says for whom this device does:
own (the default: between this user's devices, and between them and
friends' devices), friends (also between two friends' devices) or off. It
sees who talks to whom, when and how much, never what they say.
--relay-rate caps each session's bytes per second, --relay-quota all
sessions' bytes per day.

Web console: --web says where the agent serves it, 127.0.0.1:7118 by
default (a free port when that one is taken), or off. "kith web" prints
its address with a one-time login. An address other than loopback exposes
the console to the network and needs naming explicitly.`,
		Example: `  kith run --listen 0.0.0.0:7117
  kith --home /tmp/b run --listen 127.0.0.3:7117 --heartbeat 5s`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := fromEnv(cmd, h.Getenv); err != nil {
				return h.BadInput(err)
			}
			listen, err := resolveAddr(cmd.Context(), cfg.Listen, "0.0.0.0")
			if err != nil {
				return badInputf(h, "--listen %q: %v (for example :7117, 0.0.0.0:7117 or localhost:7117)", cfg.Listen, err)
			}
			cfg.Listen = listen.String()
			if cfg.Heartbeat < agent.MinHeartbeat {
				return badInputf(h, "--heartbeat %v is too short: use %v or more (%v is the default)", cfg.Heartbeat, agent.MinHeartbeat, agent.DefaultHeartbeat)
			}
			for _, s := range stun {
				ap, err := resolveAddr(cmd.Context(), s, "")
				if err != nil || !ap.Addr().IsValid() {
					if err == nil {
						err = errors.New("no host")
					}
					return badInputf(h, "--stun %q: %v (for example stun.example.org:3478)", s, err)
				}
				cfg.STUN = append(cfg.STUN, ap)
			}
			if cfg.PortMap != agent.PortMapOn && cfg.PortMap != agent.PortMapOff {
				return badInputf(h, "--portmap %q: use on or off", cfg.PortMap)
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return badInputf(h, "--log-level %q: use debug, info, warn or error", logLevel)
			}
			if cfg.Relay, err = agent.ParseRelayPolicy(relay); err != nil {
				return badInputf(h, "--relay %q: use own, friends or off", relay)
			}
			if cfg.RelayRate, err = parseBytes(rateS); err != nil {
				return badInputf(h, "--relay-rate: %v", err)
			}
			if cfg.RelayQuota, err = parseBytes(quotaS); err != nil {
				return badInputf(h, "--relay-quota: %v", err)
			}
			switch cfg.Introduce {
			case agent.IntroduceOwn, agent.IntroduceFriends, agent.IntroduceOff:
			default:
				return badInputf(h, "--introduce %q: use own, friends or off", cfg.Introduce)
			}
			if cfg.RaftProfile != "home" && cfg.RaftProfile != "lan" {
				return badInputf(h, "--raft-profile %q: use home or lan", cfg.RaftProfile)
			}
			cfg.Version = h.Version()
			cfg.Logger = slog.New(slog.NewTextHandler(h.Stderr(), &slog.HandlerOptions{Level: level}))
			if skew != 0 {
				cfg.Now = func() time.Time { return time.Now().Add(skew) }
			}

			web, exposed, err := webconsole.ParseAddr(webAddr)
			if err != nil {
				return badInputf(h, "--web: %v", err)
			}

			dir, st, release, err := h.OpenHome()
			if err != nil {
				return err
			}
			defer release()
			cfg.Home = dir
			lock, err := h.LockPassphrase(dir, "Lock passphrase: ")
			if err != nil {
				return err
			}
			dev, err := device.Load(dir, st, lock)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if web != "" {
				l, err := webconsole.Listen(web, !cmd.Flags().Changed("web") && h.Getenv("KITH_WEB") == "")
				if err != nil {
					return err
				}
				if exposed {
					fmt.Fprintf(h.Stderr(), "kith: warning: --web %s (listening on %s) exposes the web console beyond this machine: anyone who can reach that address with a login link or a session can use it; the camera works only on loopback\n", web, l.Addr())
				}
				cfg.WebListener = l
			}
			a, err := agent.New(cfg, dev, st)
			if err != nil {
				if cfg.WebListener != nil {
					cfg.WebListener.Close()
				}
				return err
			}
			info := struct {
				Listen   string            `json:"listen"`
				UserID   seed.UserPublic   `json:"user_id"`
				DeviceID seed.DevicePublic `json:"device_id"`
			}{a.Addr().String(), dev.Identity.UserID, dev.Identity.DeviceID}
			h.Emit(info, func(w io.Writer) {
				fmt.Fprintf(w, "kith agent for device %s listening on %s (Ctrl-C to stop)\n", info.DeviceID.Short(), info.Listen)
			})
			err = a.Run(ctx)
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfg.Listen, "listen", agent.DefaultListen, "UDP address to listen on, HOST:PORT or :PORT; HOST may be a name such as localhost")
	cmd.Flags().DurationVar(&cfg.Heartbeat, "heartbeat", agent.DefaultHeartbeat, "mean heartbeat interval T; heartbeats go at random between T/2 and 3T/2")
	cmd.Flags().StringArrayVar(&stun, "stun", nil, "a STUN server to learn the public address from, HOST:PORT with a name or an address (repeatable)")
	cmd.Flags().BoolVar(&cfg.Quiet, "quiet", false, "quiet mode: outside short windows, strangers get no answer at all")
	cmd.Flags().StringVar(&cfg.PortMap, "portmap", agent.PortMapOn, "ask the router for a mapping of the UDP port (NAT-PMP, UPnP IGD): on or off")
	cmd.Flags().StringVar(&cfg.Introduce, "introduce", agent.IntroduceOwn, "whom this device introduces to each other for hole punching: own, friends or off")
	cmd.Flags().StringVar(&cfg.RaftProfile, "raft-profile", "home", "own cluster timeouts: home (home and mobile links: heartbeats every 0.5 s, elections after 5 s) or lan (0.1 s, 1 s)")
	cmd.Flags().DurationVar(&cfg.ArchiveIdle, "archive-idle", agent.DefaultArchiveIdle, "archive a conversation unchanged this long even if undecided (decided ones are archived at once)")
	cmd.Flags().DurationVar(&cfg.ArchiveGone, "archive-gone", agent.DefaultArchiveGone, "copy the blobs of a device unseen this long to others, so that each keeps two holders")
	cmd.Flags().DurationVar(&cfg.ArchiveSettle, "archive-settle", agent.DefaultArchiveSettle, "archive a decided conversation once it has been unchanged this long")
	cmd.Flags().DurationVar(&cfg.ArchiveEvery, "archive-every", agent.DefaultArchiveEvery, "how often the archive service looks for work")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&relay, "relay", string(agent.RelayOwn), "relay for others when they cannot reach each other: own (this user's devices, and them with friends), friends (also two friends), or off")
	cmd.Flags().StringVar(&rateS, "relay-rate", "1M", "bytes per second one relayed session may carry (K, M, G: powers of 1024)")
	cmd.Flags().StringVar(&quotaS, "relay-quota", "1G", "bytes all relayed sessions may carry per day (K, M, G: powers of 1024)")
	cmd.Flags().StringVar(&webAddr, "web", webconsole.DefaultAddr, "where to serve the web console, HOST:PORT (loopback unless named explicitly), or off; see kith web")
	cmd.Flags().DurationVar(&skew, "clock-skew", 0, "testing: run the agent's clock this far ahead of the system clock")
	cmd.Flags().MarkHidden("clock-skew")
	cmd.Flags().Var(portList{&cfg.BeaconPorts}, "beacon-port", "testing: send LAN beacons to this port besides the agent's own, instead of 7117 (repeatable)")
	cmd.Flags().MarkHidden("beacon-port")
	return cmd
}

// badInputf formats a bad-input error.
func badInputf(h Host, format string, args ...any) error {
	return h.BadInput(fmt.Errorf(format, args...))
}

// EnvVars maps each flag of the run command to the environment variable
// that sets it when the flag is not given.
var EnvVars = map[string]string{
	"listen":         "KITH_LISTEN",
	"heartbeat":      "KITH_HEARTBEAT",
	"stun":           "KITH_STUN",
	"quiet":          "KITH_QUIET",
	"portmap":        "KITH_PORTMAP",
	"introduce":      "KITH_INTRODUCE",
	"raft-profile":   "KITH_RAFT_PROFILE",
	"log-level":      "KITH_LOG_LEVEL",
	"relay":          "KITH_RELAY",
	"relay-rate":     "KITH_RELAY_RATE",
	"relay-quota":    "KITH_RELAY_QUOTA",
	"archive-idle":   "KITH_ARCHIVE_IDLE",
	"archive-gone":   "KITH_ARCHIVE_GONE",
	"archive-settle": "KITH_ARCHIVE_SETTLE",
	"archive-every":  "KITH_ARCHIVE_EVERY",
	"web":            "KITH_WEB",
}

// fromEnv sets every flag of cmd not given on the command line from its
// environment variable, if set.
func fromEnv(cmd *cobra.Command, getenv func(string) string) error {
	for flag, key := range EnvVars {
		f := cmd.Flags().Lookup(flag)
		v := strings.TrimSpace(getenv(key))
		if f == nil || f.Changed || v == "" {
			continue
		}
		values := []string{v}
		if flag == "stun" {
			values = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
		}
		for _, one := range values {
			if err := cmd.Flags().Set(flag, one); err != nil {
				return fmt.Errorf("%s=%q is not a valid value for --%s", key, v, flag)
			}
		}
	}
	return nil
}

// portList is a repeatable flag of UDP port numbers.
type portList struct{ ports *[]uint16 }

func (p portList) String() string {
	if p.ports == nil {
		return "[]"
	}
	return fmt.Sprint(*p.ports)
}

func (p portList) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("%q is not a UDP port (1..65535)", s)
	}
	*p.ports = append(*p.ports, uint16(n))
	return nil
}

func (p portList) Type() string { return "port" }
