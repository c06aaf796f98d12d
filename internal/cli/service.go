package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kith-project/kith/internal/cli/runcmd"
	"github.com/kith-project/kith/internal/keystore"
	"github.com/spf13/cobra"
)

// unitName is the systemd unit's file name, for the user and the system.
const unitName = "kith.service"

// serviceFlags are what "kith service" takes from the command line.
type serviceFlags struct {
	system  bool
	now     bool
	unitDir string // testing: where to write the unit instead of systemd's folder
	run     map[string]*string
}

func newServiceCmd(g *globals) *cobra.Command {
	sf := &serviceFlags{run: map[string]*string{}}
	cmd := &cobra.Command{
		Use:   "service install|uninstall|status [--system]",
		Short: "Run the agent as a systemd service, for you or (with --system) for the machine",
		Long: `service writes, removes or reports a systemd unit that runs "kith run" for
this home, restarting it when it fails, as syncthing and tailscale ship theirs.

Without --system the unit is your own (~/.config/systemd/user/kith.service)
and runs while you are logged in, or always after "loginctl enable-linger".
With --system it is the machine's (/etc/systemd/system/kith.service), runs as
you (User=) from boot, and needs root to install: give --home explicitly then.

The run flags given to install (--listen, --heartbeat, --stun, --quiet,
--log-level, --relay, --relay-rate, --relay-quota) go into the unit as KITH_* environment variables, which "kith
run" reads; edit them there later. install writes the unit and says how to
start it; with --now it also enables and starts it.

A service cannot ask for a lock passphrase: sealed keys must be unsealed
("kith keys lock --remove") for the agent to start unattended.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.PersistentFlags().BoolVar(&sf.system, "system", false, "the machine's unit in /etc/systemd/system instead of your own")
	cmd.PersistentFlags().StringVar(&sf.unitDir, "unit-dir", "", "testing: the folder of the unit file")
	cmd.PersistentFlags().MarkHidden("unit-dir")

	install := &cobra.Command{
		Use:   "install",
		Short: "Write the systemd unit that runs this home's agent",
		Args:  exactArgs(0),
		RunE:  func(cmd *cobra.Command, _ []string) error { return g.serviceInstall(cmd, sf) },
	}
	install.Flags().BoolVar(&sf.now, "now", false, "also enable and start the service with systemctl")
	for _, f := range []struct{ name, usage string }{
		{"listen", "the agent's UDP address (KITH_LISTEN)"},
		{"heartbeat", "the mean heartbeat interval (KITH_HEARTBEAT)"},
		{"stun", "STUN servers, separated by commas (KITH_STUN)"},
		{"quiet", "quiet mode, true or false (KITH_QUIET)"},
		{"portmap", "router port mapping, on or off (KITH_PORTMAP)"},
		{"introduce", "whom the agent introduces for hole punching: own, friends or off (KITH_INTRODUCE)"},
		{"log-level", "debug, info, warn or error (KITH_LOG_LEVEL)"},
		{"relay", "whom to relay for: own, friends or off (KITH_RELAY)"},
		{"relay-rate", "bytes per second per relayed session (KITH_RELAY_RATE)"},
		{"relay-quota", "bytes per day for all relayed sessions (KITH_RELAY_QUOTA)"},
	} {
		sf.run[f.name] = install.Flags().String(f.name, "", f.usage)
	}
	uninstall := &cobra.Command{
		Use:   "uninstall",
		Short: "Stop the service and remove its unit",
		Args:  exactArgs(0),
		RunE:  func(cmd *cobra.Command, _ []string) error { return g.serviceUninstall(sf) },
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Say whether the unit is installed and the service active",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := sf.unitPath(g)
			if err != nil {
				return err
			}
			res := serviceResult{Active: sf.active()}
			if _, err := os.Stat(path); err == nil {
				res.Unit = path
			}
			return g.emit(res, func(w io.Writer) {
				switch {
				case res.Unit == "":
					fmt.Fprintf(w, "No kith service is installed (%s).\n", path)
				case res.Active:
					fmt.Fprintf(w, "%s is installed and active.\n", res.Unit)
				default:
					fmt.Fprintf(w, "%s is installed but not active.\n", res.Unit)
				}
			})
		},
	}
	cmd.AddCommand(install, uninstall, status)
	return cmd
}

// serviceResult is the JSON of DESIGN §9: the unit file ("" when none) and
// whether the service runs.
type serviceResult struct {
	Unit   string `json:"unit"`
	Active bool   `json:"active"`
}

// unitPath is where the unit file goes.
func (sf *serviceFlags) unitPath(g *globals) (string, error) {
	if runtime.GOOS != "linux" {
		return "", fmt.Errorf("kith service writes systemd units, which %s does not have", runtime.GOOS)
	}
	switch {
	case sf.unitDir != "":
		return filepath.Join(sf.unitDir, unitName), nil
	case sf.system:
		return filepath.Join("/etc/systemd/system", unitName), nil
	}
	dir := g.env.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", withHint(fmt.Errorf("finding your config folder: %w", err), "set XDG_CONFIG_HOME or HOME")
		}
		dir = filepath.Join(h, ".config")
	}
	return filepath.Join(dir, "systemd", "user", unitName), nil
}

// systemctl runs systemctl for this unit's manager. It is never run for a
// unit written to --unit-dir, which systemd does not read.
func (sf *serviceFlags) systemctl(args ...string) ([]byte, error) {
	if sf.unitDir != "" {
		return nil, errors.New("the unit is not in systemd's folder")
	}
	if !sf.system {
		args = append([]string{"--user"}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "systemctl", args...).CombinedOutput()
}

func (sf *serviceFlags) active() bool {
	out, err := sf.systemctl("is-active", unitName)
	return err == nil && strings.TrimSpace(string(out)) == "active"
}

func (g *globals) serviceInstall(cmd *cobra.Command, sf *serviceFlags) error {
	path, err := sf.unitPath(g)
	if err != nil {
		return err
	}
	dir, err := g.homeDir()
	if err != nil {
		return err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "kith.db")); errors.Is(err, fs.ErrNotExist) {
		return noIdentity(dir)
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the kith binary: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(bin); err == nil {
		bin = resolved
	}
	env := map[string]string{}
	for name, v := range sf.run {
		if cmd.Flags().Changed(name) {
			env[runcmd.EnvVars[name]] = *v
		}
	}
	unit, err := serviceUnit(bin, dir, sf.system, env)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return withHint(fmt.Errorf("making the unit's folder: %w", err), "--system needs root: run it with sudo")
	}
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		return withHint(fmt.Errorf("writing the unit: %w", err), "--system needs root: run it with sudo")
	}
	if sealed, _ := keystore.IsSealed(dir); sealed {
		fmt.Fprintln(g.env.Stderr, `kith: warning: this device's keys are sealed, and a service cannot ask for the lock passphrase`)
		fmt.Fprintln(g.env.Stderr, `kith: hint: unseal them with "kith keys lock --remove" for the agent to start unattended`)
	}
	ctl := "systemctl --user"
	if sf.system {
		ctl = "sudo systemctl"
	}
	res := serviceResult{Unit: path}
	if sf.now {
		for _, args := range [][]string{{"daemon-reload"}, {"enable", "--now", unitName}} {
			if out, err := sf.systemctl(args...); err != nil {
				return fmt.Errorf("systemctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
			}
		}
		res.Active = sf.active()
	}
	return g.emit(res, func(w io.Writer) {
		fmt.Fprintf(w, "Wrote %s.\n", path)
		if !sf.now {
			fmt.Fprintf(w, "Start it now and at every login with:\n  %s daemon-reload\n  %s enable --now kith\n", ctl, ctl)
			if !sf.system {
				fmt.Fprintln(w, "To keep it running when you are logged out: loginctl enable-linger")
			}
		}
	})
}

func (g *globals) serviceUninstall(sf *serviceFlags) error {
	path, err := sf.unitPath(g)
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return g.emit(serviceResult{}, func(w io.Writer) { fmt.Fprintf(w, "No kith service is installed (%s).\n", path) })
	}
	sf.systemctl("disable", "--now", unitName)
	if err := os.Remove(path); err != nil {
		return withHint(fmt.Errorf("removing the unit: %w", err), "--system needs root: run it with sudo")
	}
	sf.systemctl("daemon-reload")
	return g.emit(serviceResult{Unit: path}, func(w io.Writer) { fmt.Fprintf(w, "Stopped the service and removed %s.\n", path) })
}

// serviceUnit is the text of the unit that runs bin for home, with env
// as its KITH_* settings.
func serviceUnit(bin, home string, system bool, env map[string]string) (string, error) {
	for _, s := range []string{bin, home} {
		if strings.ContainsAny(s, "\n\"\\%$") {
			return "", badInputf("%q cannot go into a unit file: move it to a plainer path", s)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by \"kith service install\"; \"kith service uninstall\" removes it.\n")
	fmt.Fprintf(&b, "[Unit]\nDescription=kith agent for %s\n", home)
	fmt.Fprintf(&b, "Wants=network-online.target\nAfter=network-online.target\n\n")
	fmt.Fprintf(&b, "[Service]\nType=simple\n")
	if system {
		u, err := user.Current()
		if err != nil {
			return "", fmt.Errorf("finding who you are: %w", err)
		}
		name := u.Username
		if sudo := os.Getenv("SUDO_USER"); u.Uid == "0" && sudo != "" {
			name = sudo
		}
		fmt.Fprintf(&b, "User=%s\n", name)
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := env[k]
		if strings.ContainsAny(v, "\n\"\\%$") {
			return "", badInputf("%s %q cannot go into a unit file", k, v)
		}
		fmt.Fprintf(&b, "Environment=%s\n", strconv.Quote(k+"="+v))
	}
	fmt.Fprintf(&b, "ExecStart=\"%s\" --home \"%s\" run\n", bin, home)
	fmt.Fprintf(&b, "Restart=on-failure\nRestartSec=5s\n")
	if system {
		// A user manager may lack the namespaces these need.
		fmt.Fprintf(&b, "NoNewPrivileges=yes\nPrivateTmp=yes\nProtectSystem=strict\nReadWritePaths=\"%s\"\n", home)
	}
	b.WriteString("\n")
	target := "default.target"
	if system {
		target = "multi-user.target"
	}
	fmt.Fprintf(&b, "[Install]\nWantedBy=%s\n", target)
	return b.String(), nil
}
