package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/pairing"
	"github.com/kith-project/kith/roster"
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
		png  string
		ttl  time.Duration
		text bool
	)
	cmd := &cobra.Command{
		Use:   "show [--png FILE]",
		Short: "Show this device's one-time invite as a QR code (and as KITH2: text)",
		Long: `Show this device's one-time invite. On a terminal it is drawn as a QR code,
black on white, last, so that it fits an 80×24 terminal; elsewhere (a pipe, a
file) only its KITH2: text is printed. --text prints the text above the code
on a terminal too, and --png writes the code as an image.`,
		Args: exactArgs(0),
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
			onTerminal := g.env.IsTerminal != nil && g.env.IsTerminal(g.env.Stdout)
			return g.emit(res, func(w io.Writer) {
				until := res.ExpiresAt.Local().Format("15:04:05")
				if !onTerminal {
					fmt.Fprintf(w, "%s\n\n", res.Code)
					fmt.Fprintf(w, "Let the other person scan this code (it works once, until %s).\n", until)
					if png != "" {
						fmt.Fprintf(w, "The QR code is in %s.\n", png)
					}
					fmt.Fprintln(w, "Then scan theirs with: kith pair scan FILE  (or --code KITH2:…)")
					return
				}
				// On a terminal the QR code comes last, so that what
				// scrolls off the top, if anything, is text.
				fmt.Fprintf(w, "Let the other person scan this code (it works once, until %s).\n", until)
				if png != "" {
					fmt.Fprintf(w, "It is also in %s.\n", png)
				}
				fmt.Fprintln(w, "Then scan theirs: kith pair scan PHOTO  (or --code KITH2:…)")
				if text {
					fmt.Fprintln(w, res.Code)
				}
				if qr, err := pairing.QRTerminal(res.Code); err == nil {
					fmt.Fprint(w, qr)
				}
			})
		},
	}
	cmd.Flags().StringVar(&png, "png", "", "also write the QR code as a PNG image to FILE")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "how long the invite stays valid (default 10m)")
	cmd.Flags().BoolVar(&text, "text", false, "on a terminal, also print the code as KITH2: text")
	return cmd
}

func newPairScanCmd(g *globals) *cobra.Command {
	var (
		code   string
		noWait bool
	)
	cmd := &cobra.Command{
		Use:   "scan FILE | --code CODE",
		Short: "Scan the other device's code from a photo or screenshot (PNG, JPEG) or pasted text",
		Long: `Scan the other device's code from a photo or screenshot (PNG, JPEG) or
pasted text, and wait until the pairing completes: until the other person has
scanned this device's code too, or until the codes expire. --no-wait returns
at once, saying whether the pairing is done or waiting.`,
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
				if errors.Is(err, pairing.ErrImageFormat) {
					return withHint(badInputf("%s: %v", args[0], err),
						"save or convert it as PNG or JPEG (a screenshot is PNG), or paste the KITH2: text with --code")
				}
				if errors.Is(err, pairing.ErrNoQRCode) {
					return withHint(badInputf("%s: %v", args[0], err),
						"take a sharper photo, or paste the KITH2: text with --code")
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
			if res.Status == control.PairPaired || noWait {
				return g.emit(res, func(w io.Writer) { printScan(w, res, true) })
			}
			if !g.json {
				printScan(g.env.Stdout, res, false)
				fmt.Fprintln(g.env.Stdout, "Waiting for the other person to scan your code… (Ctrl-C to stop)")
			}
			done, err := c.PairWait(ctx, code)
			if err != nil {
				var ce *control.Error
				if errors.As(err, &ce) && ce.Reason == "expired" {
					return fmt.Errorf("%w: show fresh codes on both devices (kith pair show) and scan again", err)
				}
				return agentError(err)
			}
			return g.emit(done, func(w io.Writer) { printScan(w, done, true) })
		},
	}
	cmd.Flags().StringVar(&code, "code", "", "the KITH2: (or KITH1:) text of the other device's invite")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return at once instead of waiting for the other person to scan")
	return cmd
}

// printScan writes a scan's result; final is false for the first lines of
// a scan that goes on waiting.
func printScan(w io.Writer, res control.ScanResult, final bool) {
	who := "friend"
	if res.Kind == roster.KindOwn {
		who = "your own device"
	}
	switch {
	case res.Status == control.PairPaired:
		fmt.Fprintf(w, "Paired with %s %q (%s).\n", who, res.Name, res.UserID.Short())
	case res.Unreachable != "":
		fmt.Fprintf(w, "Scanned, but the other device cannot be reached from here yet (%s).\n", res.Unreachable)
		fmt.Fprintln(w, "The pairing completes when the other person scans your code (kith pair show).")
	case final:
		fmt.Fprintln(w, "Scanned. Waiting for the other person to scan your code (kith pair show).")
	default:
		fmt.Fprintln(w, "Scanned.")
	}
	fmt.Fprintf(w, "Check code: %s  (both screens must show the same)\n", res.SAS)
}
