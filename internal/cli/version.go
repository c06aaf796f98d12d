package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/spf13/cobra"
)

// Protocol is the wire protocol this build speaks (the ALPN of DESIGN §3).
const Protocol = "kith/1"

// Version is this build's version; release builds set it with
// -ldflags "-X github.com/kith-project/kith/internal/cli.Version=v1.2.3".
var Version = "v0.1.0-dev"

// buildVersion is the version: the module's, when built as a module at a
// version, else Version.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}

// buildCommit is the VCS revision the binary was built from, with
// "+dirty" for a modified tree, or "" when the build does not say.
func buildCommit() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}

type versionResult struct {
	Version  string `json:"version"`
	Protocol string `json:"protocol"`
	Commit   string `json:"commit"`
	Go       string `json:"go"`
	// Agent is the version of this home's running agent; "" when none
	// answers.
	Agent string `json:"agent"`
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show kith's version, commit, protocol and Go version, and the running agent's",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			res := versionResult{Version: buildVersion(), Protocol: Protocol, Commit: buildCommit(), Go: runtime.Version()}
			agentNote := "no agent running"
			if c, ctx, err := g.agent(cmd); err == nil {
				ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				id, err := c.ID(ctx)
				cancel()
				switch {
				case err == nil && id.Version != "":
					res.Agent = id.Version
					agentNote = "agent " + id.Version
				case err == nil:
					agentNote = "agent of an older kith"
				case !errors.Is(err, control.ErrNoAgent):
					agentNote = "agent not reachable"
				}
			}
			return g.emit(res, func(w io.Writer) {
				commit := res.Commit
				if commit == "" {
					commit = "unknown commit"
				}
				fmt.Fprintf(w, "kith %s (protocol %s, %s, %s; %s)\n", res.Version, res.Protocol, commit, res.Go, agentNote)
			})
		},
	}
}
