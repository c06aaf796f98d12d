package cli

import (
	"fmt"
	"io"

	"github.com/kith-project/kith/internal/control"
	"github.com/spf13/cobra"
)

func newRelayCmd(g *globals) *cobra.Command {
	var via, echo string
	cmd := &cobra.Command{
		Use:   "relay DEVICE",
		Short: "Reach DEVICE through a relay: one of your always-on devices, or a friend's agent",
		Long: `relay sets up a relayed path to DEVICE (a device's name, the start of its
ID, or its full ID), or keeps the one in use: datagrams to DEVICE then go
through the relay, which forwards them without being able to read them (QUIC
and TLS run end to end). The agent does this by itself when a direct path
cannot be opened; this command asks for it at once, through the relay --via
names or, without it, the best one (your own devices first, then friends').

The relay sees who talks to whom, when and how much, never what is said; it
relays only within the policy and quota its owner set (kith run --relay,
--relay-rate, --relay-quota). --echo TEXT sends TEXT to DEVICE over the path
and back, to check that it carries data.`,
		Example: `  kith relay laptop
  kith relay bob-phone --via home-server --echo hello`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(echo) > control.MaxRelayEcho {
				return badInput(fmt.Errorf("--echo: at most %d bytes", control.MaxRelayEcho))
			}
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			res, err := c.Relay(ctx, control.RelayRequest{Device: args[0], Via: via, Echo: echo})
			if err != nil {
				return agentError(err)
			}
			return g.emit(res, func(w io.Writer) {
				fmt.Fprintf(w, "%s: relay via %s (%s)\n", shortID(res.DeviceID.ID()), clip(res.Via, 40), res.Addr)
				if res.EchoMillis != nil {
					fmt.Fprintf(w, "echo came back in %.1f ms\n", *res.EchoMillis)
				}
			})
		},
	}
	cmd.Flags().StringVar(&via, "via", "", "the relay: a device's name, the start of its ID, or its full ID (default: the best one online)")
	cmd.Flags().StringVar(&echo, "echo", "", "text to send over the relayed path and back")
	return cmd
}
