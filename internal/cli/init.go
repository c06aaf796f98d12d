package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kith-project/kith/internal/device"
	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/seed"
	"github.com/spf13/cobra"
)

type initResult struct {
	UserID      seed.UserPublic   `json:"user_id"`
	DeviceID    seed.DevicePublic `json:"device_id"`
	DeviceIndex uint32            `json:"device_index"`
	Name        string            `json:"name"`
	Mnemonic    string            `json:"mnemonic"`
}

func newInitCmd(g *globals) *cobra.Command {
	var (
		name    string
		words   int
		askSeed bool
		force   bool
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a new identity: a seed phrase, the user key and this device (index 0)",
		Long: `init creates a new kith identity. It generates a BIP39 seed phrase, derives
the user key and the keys of device 0 from it, and stores this device's keys
in the home folder. The phrase is shown once: write it down. It is the only way
to restore your devices and read your history after losing one.

The BIP39 passphrase (an optional extra word that changes every key) comes from
KITH_SEED_PASSPHRASE, or from a prompt with --seed-passphrase. The lock
passphrase that seals this device's keys at rest comes from KITH_PASSPHRASE,
or a prompt on a terminal; it changes no key.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if words != 12 && words != 15 && words != 18 && words != 21 && words != 24 {
				return badInputf("--words must be 12, 15, 18, 21 or 24, not %d", words)
			}
			if name == "" {
				name = defaultName()
			}
			passphrase, err := g.seedPassphrase(askSeed, true)
			if err != nil {
				return err
			}
			phrase, err := seed.Generate(words)
			if err != nil {
				return fmt.Errorf("generating a seed phrase: %w", err)
			}
			id, err := g.provision(device.Request{Phrase: phrase, Passphrase: passphrase, Index: 0, Name: name, Force: force},
				"use another --home, or \"kith restore --force\" to replace it from its phrase")
			if err != nil {
				return err
			}
			res := initResult{UserID: id.UserID, DeviceID: id.DeviceID, DeviceIndex: id.DeviceIndex, Name: id.Name, Mnemonic: phrase.String()}
			return g.emit(res, func(w io.Writer) {
				fmt.Fprintf(w, "Your seed phrase (%d words):\n\n", phrase.Words())
				for i, wd := range strings.Fields(phrase.String()) {
					fmt.Fprintf(w, "  %2d. %-10s", i+1, wd)
					if i%4 == 3 {
						fmt.Fprintln(w)
					}
				}
				fmt.Fprintln(w)
				fmt.Fprintln(w, "Write these words down on paper now and keep them safe. They are shown only")
				fmt.Fprintln(w, "once. Anyone who has them can become you; without them a lost device and its")
				fmt.Fprintln(w, "history cannot be restored.")
				fmt.Fprintln(w)
				printIdentity(w, id.UserID, id.DeviceID, id.DeviceIndex, id.Name)
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "a name for this device (default: the host name)")
	cmd.Flags().IntVar(&words, "words", 24, "number of words in the seed phrase: 12 or 24 (15, 18, 21 also work)")
	cmd.Flags().BoolVar(&askSeed, "seed-passphrase", false, "ask for a BIP39 passphrase (the extra word) on the terminal")
	cmd.Flags().BoolVar(&force, "force", false, "replace an identity already in this home (its keys are lost unless you have its phrase)")
	return cmd
}

// provision writes a new identity into the home folder: it locks the home,
// asks for the lock passphrase and provisions the device. onExists is the
// hint given when the home already holds an identity.
func (g *globals) provision(req device.Request, onExists string) (store.Identity, error) {
	h, err := g.openHome(true)
	if err != nil {
		return store.Identity{}, err
	}
	defer h.Close()
	if req.Lock, err = g.lockPassphrase(true, "Lock passphrase for this device's keys (Enter for none): "); err != nil {
		return store.Identity{}, err
	}
	id, err := device.Provision(h.dir, h.store, req)
	if errors.Is(err, device.ErrExists) {
		return store.Identity{}, fmt.Errorf("%s already holds an identity: %s", h.dir, onExists)
	}
	return id, err
}

func defaultName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "device"
	}
	return h
}

func printIdentity(w io.Writer, userID seed.UserPublic, deviceID seed.DevicePublic, index uint32, name string) {
	fmt.Fprintf(w, "user:   %s\n", userID)
	fmt.Fprintf(w, "device: %s (index %d, %q)\n", deviceID, index, name)
}
