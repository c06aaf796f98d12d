package cli

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Protocol is the wire protocol this build speaks (the ALPN of DESIGN §3).
const Protocol = "kith/1"

// Version is this build's version; release builds set it with
// -ldflags "-X github.com/kith-project/kith/internal/cli.Version=v1.2.3".
var Version = "v0.1.0-dev"

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show kith's version and protocol",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := Version
			if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
				v = bi.Main.Version
			}
			res := struct {
				Version  string `json:"version"`
				Protocol string `json:"protocol"`
			}{v, Protocol}
			return g.emit(res, func(w io.Writer) {
				fmt.Fprintf(w, "kith %s (protocol %s)\n", res.Version, res.Protocol)
			})
		},
	}
}
