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
		yes     bool
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
or a prompt on a terminal (typed twice; Enter for none); it changes no key.
If it is forgotten, make the device again from the seed phrase with
"kith restore --force --device 0".`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if words != 12 && words != 15 && words != 18 && words != 21 && words != 24 {
				return badInputf("--words must be 12, 15, 18, 21 or 24, not %d", words)
			}
			if name == "" {
				name = defaultName()
			}
			phrase, err := seed.Generate(words)
			if err != nil {
				return fmt.Errorf("generating a seed phrase: %w", err)
			}
			id, _, err := g.provision(device.Request{Phrase: phrase, Index: 0, Name: name, Force: force},
				"use another --home, or add --force to replace it (its keys are lost unless you have its phrase)", yes,
				func(req *device.Request) (err error) {
					req.Passphrase, err = g.seedPassphrase(askSeed, true)
					return err
				})
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
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation on a terminal")
	return cmd
}

// provision writes a new identity into the home folder. It locks the home
// and checks that it may take an identity before asking for anything:
// then secrets fills in the request (the phrase, the BIP39 passphrase),
// the lock passphrase is asked for, and the device is provisioned. onExists
// is the hint given when the home already holds an identity; yes skips the
// confirmation that --force asks for on a terminal. before is the identity
// the home held, if any.
func (g *globals) provision(req device.Request, onExists string, yes bool, secrets func(*device.Request) error) (id, before store.Identity, err error) {
	h, err := g.openHome(true)
	if err != nil {
		return id, before, err
	}
	defer h.Close()
	before, had, err := h.store.Identity()
	if err != nil {
		return id, before, err
	}
	if had && !req.Force {
		return id, before, withHint(fmt.Errorf("%s already holds an identity (user %s)", h.dir, before.UserID.Short()), onExists)
	}
	if had && !yes {
		if err := g.confirm(fmt.Sprintf("%s holds device %d of user %s. Replacing it loses its keys unless you have its phrase.", h.dir, before.DeviceIndex, before.UserID.Short()), "Replace it?"); err != nil {
			return id, before, err
		}
	}
	if err := secrets(&req); err != nil {
		return id, before, err
	}
	if req.Lock, err = g.newLockPassphrase(); err != nil {
		return id, before, err
	}
	id, err = device.Provision(h.dir, h.store, req)
	if errors.Is(err, device.ErrExists) {
		return id, before, withHint(fmt.Errorf("%s already holds an identity", h.dir), onExists)
	}
	return id, before, err
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
