package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/kith-project/kith/internal/keystore"
	"github.com/kith-project/kith/seed"
	"github.com/spf13/cobra"
)

func newKeysCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Export archive keys from the seed phrase, or change this device's lock passphrase",
		Args:  exactArgs(0),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newKeysExportCmd(g), newKeysLockCmd(g))
	return cmd
}

type exportResult struct {
	DeviceIndex  *uint32 `json:"device_index"`
	AgeIdentity  string  `json:"age_identity"`
	AgeRecipient string  `json:"age_recipient"`
}

func newKeysExportCmd(g *globals) *cobra.Command {
	var (
		dev      deviceIndexFlag
		recovery bool
		askSeed  bool
		out      string
	)
	cmd := &cobra.Command{
		Use:   "export --device I",
		Short: "Print device I's archive key as an age identity (phrase on stdin)",
		Long: `export derives the archive key of device I (or, with --recovery, the user's
recovery archive key) from the seed phrase on standard input and prints it as
an age identity, so that the stock age tool can open kith archives:

  kith keys export --device 0 -o device0.agekey < phrase.txt
  age -d -i device0.agekey archive.age

The output is a secret: anyone holding it can open that layer of your
archives. -o FILE writes it to a new file only you can read (mode 0600) and
never overwrites one. It needs no home folder and no agent.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			var index uint32
			if !recovery {
				i, err := dev.get(cmd)
				if err != nil {
					return err
				}
				index = i
			} else if cmd.Flags().Changed("device") {
				return badInputf("give either --device I or --recovery, not both")
			}
			var file *os.File
			if out != "" {
				f, oerr := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if errors.Is(oerr, fs.ErrExist) {
					return badInput(withHint(fmt.Errorf("%s already exists", out), "choose a new file name, or remove the old one first"))
				}
				if oerr != nil {
					return badInput(oerr)
				}
				file = f
				// A failed export leaves no file behind.
				defer func() {
					f.Close()
					if err != nil {
						os.Remove(out)
					}
				}()
			}
			phrase, err := g.parsePhrase()
			if err != nil {
				return err
			}
			passphrase, err := g.seedPassphrase(askSeed, false)
			if err != nil {
				return err
			}
			s := phrase.Seed(passphrase)
			defer clear(s)
			var key seed.ArchiveKey
			if recovery {
				key, err = seed.DeriveRecoveryArchive(s)
			} else {
				_, key, err = seed.DeriveDevice(s, index)
			}
			if err != nil {
				return fmt.Errorf("deriving the archive key: %w", err)
			}
			res := exportResult{AgeIdentity: key.AgeIdentityString(), AgeRecipient: key.Recipient().String()}
			if !recovery {
				res.DeviceIndex = &index
			}
			if file != nil {
				writeAgeKey(file, res, recovery, index)
				if err = file.Sync(); err != nil {
					return fmt.Errorf("writing %s: %w", out, err)
				}
				if err = file.Close(); err != nil {
					return fmt.Errorf("writing %s: %w", out, err)
				}
				res.AgeIdentity = ""
				return g.emit(struct {
					DeviceIndex  *uint32 `json:"device_index"`
					AgeRecipient string  `json:"age_recipient"`
					File         string  `json:"file"`
				}{res.DeviceIndex, res.AgeRecipient, out}, func(w io.Writer) {
					fmt.Fprintf(w, "Wrote the secret key to %s (mode 0600).\npublic key: %s\n", out, res.AgeRecipient)
				})
			}
			return g.emit(res, func(w io.Writer) { writeAgeKey(w, res, recovery, index) })
		},
	}
	addDeviceFlag(cmd, &dev, "index of the device whose archive key to export")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the key to a new FILE with mode 0600 instead of stdout")
	cmd.Flags().BoolVar(&recovery, "recovery", false, "export the user's recovery archive key instead of a device's")
	cmd.Flags().BoolVar(&askSeed, "seed-passphrase", false, "ask for the BIP39 passphrase (the extra word) on the terminal")
	return cmd
}

// writeAgeKey writes the key in the age key-file format, so that the
// output can be given to age -i.
func writeAgeKey(w io.Writer, res exportResult, recovery bool, index uint32) {
	fmt.Fprintf(w, "# created: %s\n", time.Now().UTC().Format(time.RFC3339))
	if recovery {
		fmt.Fprintln(w, "# kith user recovery archive key")
	} else {
		fmt.Fprintf(w, "# kith device %d archive key\n", index)
	}
	fmt.Fprintf(w, "# public key: %s\n", res.AgeRecipient)
	fmt.Fprintln(w, res.AgeIdentity)
}

func newKeysLockCmd(g *globals) *cobra.Command {
	var remove bool
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Set, change or remove the lock passphrase that seals this device's keys",
		Long: `lock seals this device's private keys at rest with a new lock passphrase
(argon2id and XChaCha20-Poly1305), or removes the seal with --remove.

The current passphrase, if the keys are sealed, comes from KITH_PASSPHRASE or a
prompt, and is checked first (three tries on a terminal); the new one comes
from KITH_NEW_PASSPHRASE or a prompt, typed twice. A forgotten lock passphrase
cannot be recovered: make the device again from its seed phrase with
"kith restore --force --device I". The lock passphrase
protects only this device's files: it changes no key and no ID.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := g.openHome(false)
			if err != nil {
				return err
			}
			defer h.Close()
			old, err := g.lockPassphrase(h.dir, "Current lock passphrase: ")
			if err != nil {
				return err
			}
			var next []byte
			if !remove {
				if v := g.env.Getenv("KITH_NEW_PASSPHRASE"); v != "" {
					next = []byte(v)
				} else {
					p, err := g.newSecret("New lock passphrase: ", false)
					if errors.Is(err, errNoTerminal) {
						return badInput(withHint(errors.New("no new lock passphrase given"), "set KITH_NEW_PASSPHRASE, or run on a terminal to be asked, or use --remove"))
					}
					if err != nil {
						return err
					}
					next = []byte(p)
				}
			}
			if err := keystore.ChangeLock(h.dir, old, next); err != nil {
				if errors.Is(err, keystore.ErrWrongPassphrase) {
					return err
				}
				return fmt.Errorf("changing the lock passphrase: %w", err)
			}
			res := struct {
				Sealed bool `json:"sealed"`
			}{next != nil}
			return g.emit(res, func(w io.Writer) {
				if res.Sealed {
					fmt.Fprintln(w, "This device's keys are sealed with the new lock passphrase.")
				} else {
					fmt.Fprintln(w, "This device's keys are stored unsealed (mode 0600).")
				}
			})
		},
	}
	cmd.Flags().BoolVar(&remove, "remove", false, "remove the lock passphrase and store the keys unsealed")
	return cmd
}
