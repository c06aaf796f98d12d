package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/kith-project/kith/internal/cli/runcmd"
	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/store"
	"github.com/spf13/cobra"
)

// agent returns a client for this home's agent and the command's context.
func (g *globals) agent(cmd *cobra.Command) (*control.Client, context.Context, error) {
	dir, err := g.homeDir()
	if err != nil {
		return nil, nil, err
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return control.NewClient(dir), ctx, nil
}

func newRunCmd(g *globals) *cobra.Command {
	cmd := runcmd.New(runHost{g})
	cmd.Args = exactArgs(0)
	return cmd
}

// runHost lends the run command the CLI's home, secrets and output.
type runHost struct{ g *globals }

func (h runHost) OpenHome() (string, *store.Store, func() error, error) {
	oh, err := h.g.openHome(false)
	if err != nil {
		return "", nil, nil, err
	}
	return oh.dir, oh.store, oh.Close, nil
}

func (h runHost) LockPassphrase(dir, prompt string) ([]byte, error) {
	return h.g.lockPassphrase(dir, prompt)
}

func (h runHost) Emit(v any, text func(io.Writer)) error { return h.g.emit(v, text) }
func (h runHost) BadInput(err error) error               { return badInput(err) }
func (h runHost) Stderr() io.Writer                      { return h.g.env.Stderr }
func (h runHost) Version() string                        { return buildVersion() }
func (h runHost) Getenv(key string) string               { return h.g.env.Getenv(key) }

func addAgentCommands(root *cobra.Command, g *globals) {
	root.AddCommand(
		newRunCmd(g),
		newPairCmd(g),
		newFriendsCmd(g),
		newDevicesCmd(g),
		newStatusCmd(g),
		newDiscoverCmd(g),
		newNetcheckCmd(g),
		newRelayCmd(g),
		newDemoCmd(g),
		newConvCmd(g),
		newArchiveCmd(g),
		newServiceCmd(g),
		newWebCmd(g),
	)
}

// fmtAgo prints how long ago t was, for tables.
func fmtAgo(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	default:
		return t.Local().Format("Jan 02")
	}
}
