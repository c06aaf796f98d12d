package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/kith-project/kith/internal/control"
	"github.com/spf13/cobra"
)

func newDiscoverCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "discover",
		Short: "Send a LAN beacon now and list your own devices and friends' devices that answered",
		Long: `discover has the agent send a LAN beacon at once, to the broadcast address of
each of its IPv4 networks, and lists the own devices and friends' devices
that answered within about two seconds. The agent also sends beacons on its
own, at start, when its networks change and every few minutes.

Only your own devices and your friends' can tell a beacon from random bytes:
it carries no device ID, and no two beacons share anything a stranger could
link. An agent listening on one address (not 0.0.0.0) hears no broadcasts.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			ds, err := c.Discover(ctx)
			if err != nil {
				return agentError(err)
			}
			return g.emit(ds, func(w io.Writer) { printDiscovered(w, ds) })
		},
	}
}

func printDiscovered(w io.Writer, ds []control.Discovered) {
	if len(ds) == 0 {
		fmt.Fprintln(w, "No own device or friend answered on this network.")
		return
	}
	// Within 80 columns: 12 + 12 + 6 + 16 + 21 and the gaps.
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tUSER\tKIND\tNAME\tADDRESS")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.DeviceID.Short(), d.UserID.Short(), clip(string(d.Kind), 6), clip(orDash(d.Name), 16), clip(orDash(d.Addr), 21))
	}
	tw.Flush()
}
