package cli

import (
	"fmt"
	"io"

	"github.com/kith-project/kith/internal/device"
	"github.com/kith-project/kith/seed"
	"github.com/spf13/cobra"
)

type restoreResult struct {
	UserID      seed.UserPublic   `json:"user_id"`
	DeviceID    seed.DevicePublic `json:"device_id"`
	DeviceIndex uint32            `json:"device_index"`
	Name        string            `json:"name"`
}

// deviceIndexFlag is --device I, required by restore and keys export.
type deviceIndexFlag struct {
	index uint32
}

func addDeviceFlag(cmd *cobra.Command, f *deviceIndexFlag, usage string) {
	cmd.Flags().Uint32Var(&f.index, "device", 0, usage)
}

func (f *deviceIndexFlag) get(cmd *cobra.Command) (uint32, error) {
	if !cmd.Flags().Changed("device") {
		return 0, badInputf("%s needs --device I, the index of the device (0 for the first; see \"kith devices\" on another device)", cmd.CommandPath())
	}
	if f.index > seed.MaxDeviceIndex {
		return 0, badInputf("--device %d is out of range: use 0 to %d", f.index, seed.MaxDeviceIndex)
	}
	return f.index, nil
}

// parsePhrase reads and parses the seed phrase from standard input; every
// parse failure is bad input (exit 2) with the parser's explanation.
func (g *globals) parsePhrase() (seed.Phrase, error) {
	text, err := g.readPhrase()
	if err != nil {
		return seed.Phrase{}, err
	}
	p, err := seed.ParsePhrase(text)
	if err != nil {
		return seed.Phrase{}, badInput(fmt.Errorf("%w; check the phrase and try again", err))
	}
	return p, nil
}

func newRestoreCmd(g *globals) *cobra.Command {
	var (
		dev     deviceIndexFlag
		name    string
		askSeed bool
		force   bool
	)
	cmd := &cobra.Command{
		Use:   "restore --device I",
		Short: "Restore device I of an identity from its seed phrase (read from stdin)",
		Long: `restore reads a seed phrase from standard input and makes this home device I
of that identity, with exactly the keys it had before. It refuses to replace an
identity already in the home unless given --force.

The phrase may be typed in any case, with any spacing, or pasted over several
lines. Give the BIP39 passphrase, if the identity has one, in
KITH_SEED_PASSPHRASE or with --seed-passphrase.`,
		Example: `  kith restore --device 1 < phrase.txt
  kith --home /tmp/laptop restore --device 1 --name laptop`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			index, err := dev.get(cmd)
			if err != nil {
				return err
			}
			if name == "" {
				name = defaultName()
			}
			phrase, err := g.parsePhrase()
			if err != nil {
				return err
			}
			passphrase, err := g.seedPassphrase(askSeed, false)
			if err != nil {
				return err
			}
			id, err := g.provision(device.Request{Phrase: phrase, Passphrase: passphrase, Index: index, Name: name, Force: force},
				"use another --home, or add --force to replace it")
			if err != nil {
				return err
			}
			res := restoreResult{UserID: id.UserID, DeviceID: id.DeviceID, DeviceIndex: id.DeviceIndex, Name: id.Name}
			return g.emit(res, func(w io.Writer) {
				fmt.Fprintln(w, "Restored.")
				printIdentity(w, id.UserID, id.DeviceID, id.DeviceIndex, id.Name)
			})
		},
	}
	addDeviceFlag(cmd, &dev, "index of the device to restore (0 is the first device)")
	cmd.Flags().StringVar(&name, "name", "", "a name for this device (default: the host name)")
	cmd.Flags().BoolVar(&askSeed, "seed-passphrase", false, "ask for the BIP39 passphrase (the extra word) on the terminal")
	cmd.Flags().BoolVar(&force, "force", false, "replace the identity already in this home")
	return cmd
}
