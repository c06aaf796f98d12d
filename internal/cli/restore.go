package cli

import (
	"fmt"
	"io"

	"github.com/kith-project/kith/internal/device"
	"github.com/kith-project/kith/internal/store"
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
		return 0, badInput(withHint(fmt.Errorf("%s needs --device I, the index of the device", cmd.CommandPath()),
			"0 is the device made by \"kith init\", 1 the next one, and so on; \"kith id\" on a device shows its index"))
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
		return seed.Phrase{}, badInput(withHint(err, "check the phrase and try again"))
	}
	return p, nil
}

func newRestoreCmd(g *globals) *cobra.Command {
	var (
		dev     deviceIndexFlag
		name    string
		askSeed bool
		force   bool
		yes     bool
	)
	cmd := &cobra.Command{
		Use:   "restore --device I",
		Short: "Restore device I of an identity from its seed phrase (read from stdin)",
		Long: `restore reads a seed phrase from standard input and makes this home device I
of that identity, with exactly the keys it had before. It refuses to replace an
identity already in the home unless given --force.

The phrase may be typed in any case and with any spacing. On a terminal the
words are not shown, and may be typed or pasted over several lines: restore
reads until it has a whole phrase (12, 15, 18, 21 or 24 words), or an empty
line. From a pipe or a file it reads everything. Give the BIP39 passphrase,
if the identity has one, in KITH_SEED_PASSPHRASE or with --seed-passphrase.

The home is checked first: a home in use, or one that holds an identity
without --force, is refused before the phrase is asked for. A user ID new to
this home gets a warning, since a phrase restored without its BIP39
passphrase gives another user.`,
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
			id, before, err := g.provision(device.Request{Index: index, Name: name, Force: force},
				"use another --home, or add --force to replace it", yes,
				func(req *device.Request) (err error) {
					if req.Phrase, err = g.parsePhrase(); err != nil {
						return err
					}
					req.Passphrase, err = g.seedPassphrase(askSeed, false)
					return err
				})
			if err != nil {
				return err
			}
			g.warnNewUser(id, before)
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
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation on a terminal")
	return cmd
}

// warnNewUser warns, on stderr, when a restore gives a user ID that this
// home has not seen: one other than the user of the identity it replaced,
// or any user in a home that held none. A phrase restored without its
// BIP39 passphrase, or with another one, gives another user.
func (g *globals) warnNewUser(id, before store.Identity) {
	if before.UserID.Equal(id.UserID) {
		return
	}
	w := g.env.Stderr
	if !before.UserID.Equal(seed.UserPublic{}) {
		fmt.Fprintf(w, "kith: warning: user %s is not the user this home held (%s)\n", id.UserID.Short(), before.UserID.Short())
	} else {
		fmt.Fprintf(w, "kith: warning: user %s is new to this home: check that it is your user ID\n", id.UserID.Short())
	}
	fmt.Fprintln(w, "kith: hint: \"kith id\" on another of your devices shows your user ID; a different one means another phrase or another BIP39 passphrase (KITH_SEED_PASSPHRASE, --seed-passphrase)")
}
