package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/kith-project/kith/agent"
	"github.com/spf13/cobra"
)

func newFriendsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "friends",
		Short: "List your friends and their devices; block, unblock or remove one",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var fs []agent.FriendView
			if err := g.call(cmd, "GET", "/v1/friends", nil, &fs); err != nil {
				return err
			}
			return g.emit(fs, func(w io.Writer) {
				if len(fs) == 0 {
					fmt.Fprintln(w, "No friends yet: pair in person with \"kith pair show\" and \"kith pair scan\".")
					return
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USER\tNAME\tSTATUS\tCHECK CODE\tDEVICES")
				for _, f := range fs {
					online := 0
					for _, d := range f.Devices {
						if d.Online {
							online++
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d (%d online)\n", f.UserID, f.Name, f.Status, f.SAS, len(f.Devices), online)
				}
				tw.Flush()
			})
		},
	}
	for _, action := range []struct{ name, short string }{
		{"block", "Block USER: their packets are dropped and nothing of theirs is stored"},
		{"unblock", "Unblock USER"},
		{"remove", "Forget USER and their devices (pair again to be friends)"},
	} {
		cmd.AddCommand(&cobra.Command{
			Use:   action.name + " USER",
			Short: action.short,
			Args:  exactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var res agent.FriendStatus
				if err := g.call(cmd, "POST", "/v1/friends/"+action.name, agent.FriendRequest{UserID: args[0]}, &res); err != nil {
					return err
				}
				return g.emit(res, func(w io.Writer) {
					fmt.Fprintf(w, "%s: %s\n", res.UserID, res.Status)
				})
			},
		})
	}
	return cmd
}
