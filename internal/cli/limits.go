package cli

import (
	"fmt"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/spf13/cobra"
)

// boundInviteTTL makes "kith pair show --ttl" refuse, as bad input, an
// invite lifetime the agent would not grant ([control.MaxInviteTTL]),
// before the agent is asked.
func boundInviteTTL(root *cobra.Command) {
	show, _, err := root.Find([]string{"pair", "show"})
	if err != nil || show.Name() != "show" {
		return
	}
	prev := show.PreRunE
	show.PreRunE = func(cmd *cobra.Command, args []string) error {
		if f := cmd.Flags().Lookup("ttl"); f != nil && f.Changed {
			if ttl, err := time.ParseDuration(f.Value.String()); err == nil && ttl > control.MaxInviteTTL {
				return badInput(withHint(fmt.Errorf("--ttl %v is longer than an invite may last (%v)", ttl, control.MaxInviteTTL),
					"pair in person, within minutes: the default of 10m is usually enough"))
			}
		}
		if prev != nil {
			return prev(cmd, args)
		}
		return nil
	}
}
