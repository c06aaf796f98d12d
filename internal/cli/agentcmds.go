package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/spf13/cobra"
)

// client returns a control client for this home's agent.
func (g *globals) client() (*control.Client, error) {
	dir, err := g.homeDir()
	if err != nil {
		return nil, err
	}
	return control.NewClient(dir), nil
}

// call sends one request to the agent. Bad-input answers exit with status
// 2; a missing agent is a failure that says how to start one.
func (g *globals) call(cmd *cobra.Command, method, path string, in, out any) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	err = c.Do(ctx, method, path, in, out)
	if control.BadInput(err) {
		return badInput(err)
	}
	return err
}

func addAgentCommands(root *cobra.Command, g *globals) {
	root.AddCommand(
		newRunCmd(g),
		newPairCmd(g),
		newFriendsCmd(g),
		newStatusCmd(g),
		newDemoCmd(g),
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
		return t.Local().Format("2006-01-02")
	}
}
