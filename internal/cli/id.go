package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/kith-project/kith/internal/control"
	"github.com/spf13/cobra"
)

func newIDCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "id",
		Short: "Show this device's user ID, device ID and archive recipient",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := g.identity(cmd)
			if err != nil {
				return err
			}
			return g.emit(res, func(w io.Writer) {
				printIdentity(w, res.UserID, res.DeviceID, res.DeviceIndex, res.Name)
				fmt.Fprintf(w, "archive recipient: %s\n", res.ArchiveRecipient)
			})
		},
	}
}

// identity reads who this device is: from the running agent, which holds
// the home, or else from the store.
func (g *globals) identity(cmd *cobra.Command) (control.IDResult, error) {
	c, ctx, err := g.agent(cmd)
	if err != nil {
		return control.IDResult{}, err
	}
	res, err := c.ID(ctx)
	if !errors.Is(err, control.ErrNoAgent) {
		return res, agentError(err)
	}
	h, err := g.openHome(false)
	if err != nil {
		return res, err
	}
	defer h.Close()
	id, ok, err := h.store.Identity()
	if err != nil {
		return res, err
	}
	if !ok {
		return res, noIdentity(h.dir)
	}
	return control.IDResult{UserID: id.UserID, DeviceID: id.DeviceID, DeviceIndex: id.DeviceIndex, Name: id.Name, ArchiveRecipient: id.ArchiveRecipient}, nil
}
