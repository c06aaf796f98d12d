package cli

import (
	"fmt"
	"html"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"
)

// webOpenFile is the file in the home folder that "kith web" opens in the
// browser: a page that goes on to the login URL. Opening a file keeps the
// one-time token out of the browser's command line, which every user of
// the machine can read.
const webOpenFile = "web-open.html"

func newWebCmd(g *globals) *cobra.Command {
	var noOpen bool
	cmd := &cobra.Command{
		Use:   "web",
		Short: "Print the web console's address with a one-time login, and open it on a desktop",
		Long: `web asks the running agent for a login to its web console (kith run --web)
and prints the console's address carrying a one-time token: opening it
logs this browser in, once, within two minutes. On a desktop (DISPLAY or
WAYLAND_DISPLAY set) it also opens the browser with xdg-open.

The console pairs by camera, shows devices and friends, and follows
conversations; it answers only on this machine unless the agent was started
with --web naming another address.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			res, err := c.WebLogin(ctx)
			if err != nil {
				return agentError(err)
			}
			opened := ""
			if !noOpen && (g.env.Getenv("DISPLAY") != "" || g.env.Getenv("WAYLAND_DISPLAY") != "") {
				if dir, err := g.homeDir(); err == nil {
					opened = openInBrowser(dir, res.URL)
				}
			}
			return g.emit(res, func(w io.Writer) {
				fmt.Fprintln(w, res.URL)
				if opened != "" {
					fmt.Fprintf(w, "Opened in the browser (%s). The link works once, within %d seconds.\n", opened, res.ExpiresIn)
				} else {
					fmt.Fprintf(w, "Open it in a browser on this machine. It works once, within %d seconds.\n", res.ExpiresIn)
				}
			})
		},
	}
	cmd.Flags().BoolVar(&noOpen, "no-open", false, "print the address only, even on a desktop")
	return cmd
}

// openInBrowser writes a page that goes on to url into the home folder,
// readable by its owner only, and hands it to xdg-open without waiting.
// It returns what it ran, or "" when it could not.
func openInBrowser(home, url string) string {
	opener, err := exec.LookPath("xdg-open")
	if err != nil {
		return ""
	}
	file := filepath.Join(home, webOpenFile)
	u := html.EscapeString(url)
	page := `<!doctype html><meta charset="utf-8"><title>kith web</title>` +
		`<meta http-equiv="refresh" content="0;url=` + u + `"><p><a href="` + u + `">Open the kith console</a></p>` + "\n"
	if err := os.WriteFile(file, []byte(page), 0o600); err != nil {
		return ""
	}
	cmd := exec.Command(opener, file)
	if cmd.Start() != nil {
		return ""
	}
	go cmd.Wait() // the browser may outlive us: the process is reaped if we are still here
	return "xdg-open"
}
