package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/kith-project/kith/internal/control"
	"github.com/spf13/cobra"
)

func newArchiveCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "archive",
		Short: "Your sealed history: where it is kept, and the way out",
		Long: `archive shows and manages the archive: decided conversations (and ones idle
for a long time) are sealed twice with age, the inner layer to one of your
devices' archive keys and the outer layer to another's (to the recovery key
of your seed phrase while you have one device), kept on at least two
devices, yours or friends' acting as archive relays, and removed from the
device's store. "kith conv show ID" still opens them, with two of your
devices cooperating.

Without kith, the stock age tool opens a blob from "kith archive get" with
keys from "kith keys export": see the README.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newArchiveStatusCmd(g), newArchiveListCmd(g), newArchiveNowCmd(g), newArchiveGetCmd(g), newArchiveQuotaCmd(g))
	return cmd
}

func newArchiveStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "How many blobs, how large, and how many lack a second holder",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			st, err := c.ArchiveStatus(ctx)
			if err != nil {
				return err
			}
			return g.emit(st, func(w io.Writer) {
				fmt.Fprintf(w, "%d blobs, %s, each kept on at least %d devices; %d under-replicated\n", st.Blobs, humanBytes(st.Bytes), st.MinReplicas, st.UnderReplicated)
			})
		},
	}
}

func newArchiveListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "The blobs, with their size and holders",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			bs, err := c.ArchiveList(ctx)
			if err != nil {
				return err
			}
			if bs == nil {
				bs = []control.ArchiveBlob{}
			}
			return g.emit(bs, func(w io.Writer) {
				if len(bs) == 0 {
					fmt.Fprintln(w, `Nothing archived yet: "kith archive now" archives the decided conversations.`)
					return
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "BLOB\tBYTES\tHOLDERS")
				for _, b := range bs {
					var hs []string
					for _, h := range b.Holders {
						hs = append(hs, h.Short())
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\n", b.Blob, b.Bytes, strings.Join(hs, ","))
				}
				tw.Flush()
			})
		},
	}
}

func newArchiveNowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "now",
		Short: "Archive every eligible conversation at once",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			res, err := c.ArchiveNow(ctx)
			if err != nil {
				return err
			}
			return g.emit(res, func(w io.Writer) {
				fmt.Fprintf(w, "Archived %d conversations.\n", len(res.Archived))
				for _, id := range res.Archived {
					fmt.Fprintf(w, "  %s\n", id)
				}
			})
		},
	}
}

func newArchiveGetCmd(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "get BLOB --out FILE",
		Short: "Write a blob's sealed bytes (outer age layer first) to a new file",
		Long: `get writes the sealed bytes of a blob, from this device or any holder, to a
new FILE. The stock age tool opens it with the two archive keys from
"kith keys export" (outer layer first):

  age -d -i outer.key FILE | age -d -i inner.key > part`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			if out == "" {
				return badInput(errors.New("--out FILE is required"))
			}
			if len(strings.TrimSpace(args[0])) != 64 {
				return badInput(withHint(fmt.Errorf("%q is not a blob name", clip(args[0], 80)), `"kith archive list" shows the blobs' full names`))
			}
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			res, err := c.ArchiveGet(ctx, args[0])
			if err != nil {
				return err
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, fs.ErrExist) {
				return badInput(withHint(fmt.Errorf("%s already exists", out), "choose a new file name, or remove the old one first"))
			}
			if err != nil {
				return badInput(err)
			}
			defer func() {
				if cerr := f.Close(); err == nil && cerr != nil {
					err = cerr
				}
				if err != nil {
					os.Remove(out)
				}
			}()
			if _, err = f.Write(res.Data); err != nil {
				return fmt.Errorf("writing %s: %w", out, err)
			}
			if err = f.Sync(); err != nil {
				return fmt.Errorf("writing %s: %w", out, err)
			}
			return g.emit(struct {
				Blob  string `json:"blob"`
				Bytes int    `json:"bytes"`
				File  string `json:"file"`
			}{strings.TrimSpace(args[0]), len(res.Data), out}, func(w io.Writer) {
				fmt.Fprintf(w, "Wrote %d sealed bytes to %s.\n", len(res.Data), out)
			})
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "the new FILE to write the sealed bytes to")
	return cmd
}

func newArchiveQuotaCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "quota [SIZE]",
		Short: "How much of this device friends may use as an archive relay",
		Long: `quota prints, or with SIZE sets, how many bytes of this device each friend
may fill with their sealed blobs (this device relays archives for friends).
SIZE is a number of bytes, or one with K, M or G (powers of 1024); 0 takes
no more blobs. A relay past its quota refuses new blobs with a clear reason.`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req control.ArchiveQuotaRequest
			if len(args) == 1 {
				n, err := parseSize(args[0])
				if err != nil {
					return badInput(err)
				}
				req.QuotaBytes = &n
			}
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			res, err := c.ArchiveQuota(ctx, req)
			if err != nil {
				return err
			}
			return g.emit(res, func(w io.Writer) {
				fmt.Fprintf(w, "Friends may use %s each here; they use %s.\n", humanBytes(res.QuotaBytes), humanBytes(res.UsedBytes))
			})
		},
	}
}

// parseSize reads a size: bytes, or with K, M or G (powers of 1024).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if v, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size: use a whole number of bytes, or one with K, M or G (for example 512M, 2G)", clip(s, 40))
	}
	return n * mult, nil
}

// humanBytes prints a byte count for people.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// maxArgs is cobra.MaximumNArgs with an exit-2 error.
func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return badInput(withHint(fmt.Errorf("%s takes at most %d arguments, got %d", cmd.CommandPath(), n, len(args)), fmt.Sprintf("see %q", cmd.CommandPath()+" --help")))
		}
		return nil
	}
}
