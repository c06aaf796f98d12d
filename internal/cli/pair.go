package cli

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/kith-project/kith/roster"
	"io"
	"os"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/pairing"
	"github.com/spf13/cobra"
)

func newPairCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pair",
		Short: "Pair with a friend or your own device in person, by QR code",
		Long: `Pairing is mutual and in person: each of you runs "kith pair show" and scans
the other's code with "kith pair scan". Both screens then show the same short
check code (SAS); compare them out loud. A different code means a code was
swapped: remove that friend and pair again.

Scanning a code from a device with your own user ID (one restored from your
seed phrase) adds it as your own device instead of a friend.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newPairShowCmd(g), newPairScanCmd(g))
	return cmd
}

func newPairShowCmd(g *globals) *cobra.Command {
	var (
		png string
		ttl time.Duration
	)
	cmd := &cobra.Command{
		Use:   "show [--png FILE]",
		Short: "Show this device's one-time invite as a QR code (and as KITH1: text)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl < 0 {
				return badInputf("--ttl must be positive")
			}
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			res, err := c.PairShow(ctx, ttl)
			if err != nil {
				return agentError(err)
			}
			if png != "" {
				var buf bytes.Buffer
				if err := pairing.WritePNG(&buf, res.Code, 8); err != nil {
					return fmt.Errorf("drawing the QR code: %w", err)
				}
				if err := os.WriteFile(png, buf.Bytes(), 0o600); err != nil {
					return fmt.Errorf("writing the QR code: %w", err)
				}
			}
			return g.emit(res, func(w io.Writer) {
				qr, err := pairing.QRTerminal(res.Code)
				if err == nil {
					fmt.Fprint(w, qr)
				}
				fmt.Fprintf(w, "%s\n\n", res.Code)
				fmt.Fprintf(w, "Let the other person scan this code (it works once, until %s).\n", res.ExpiresAt.Local().Format("15:04:05"))
				if png != "" {
					fmt.Fprintf(w, "The QR code is also in %s.\n", png)
				}
				fmt.Fprintln(w, "Then scan theirs with: kith pair scan FILE  (or --code KITH1:…)")
			})
		},
	}
	cmd.Flags().StringVar(&png, "png", "", "also write the QR code as a PNG image to FILE")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "how long the invite stays valid (default 10m)")
	return cmd
}

func newPairScanCmd(g *globals) *cobra.Command {
	var code string
	cmd := &cobra.Command{
		Use:   "scan FILE | --code CODE",
		Short: "Scan the other device's code from a photo or screenshot (PNG, JPEG) or pasted text",
		Args: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (code != "") {
				return badInputf("give either an image FILE or --code CODE (see %q)", cmd.CommandPath()+" --help")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if code == "" {
				f, err := os.Open(args[0])
				if err != nil {
					return badInputf("reading the image: %v", err)
				}
				defer f.Close()
				code, err = pairing.DecodeImage(f)
				if errors.Is(err, pairing.ErrNoQRCode) || errors.Is(err, pairing.ErrImageFormat) {
					return badInputf("%s: %v; take a sharper photo or paste the KITH1: text with --code", args[0], err)
				}
				if err != nil {
					return err
				}
			}
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			res, err := c.PairScan(ctx, code)
			if err != nil {
				return agentError(err)
			}
			return g.emit(res, func(w io.Writer) {
				who := "friend"
				if res.Kind == roster.KindOwn {
					who = "your own device"
				}
				switch res.Status {
				case control.PairPaired:
					fmt.Fprintf(w, "Paired with %s %q (%s).\n", who, res.Name, short(res.UserID))
				default:
					fmt.Fprintf(w, "Scanned. Waiting for the other person to scan your code (kith pair show).\n")
				}
				fmt.Fprintf(w, "Check code: %s  (both screens must show the same)\n", res.SAS)
			})
		},
	}
	cmd.Flags().StringVar(&code, "code", "", "the KITH1: text of the other device's invite")
	return cmd
}
