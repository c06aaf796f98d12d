// Package web holds the web console's browser tests: real kith agents
// (internal/kithtest), each with its console, driven through Debian's
// chromium in headless mode with chromedp. Without chromium they skip,
// saying so.
//
// Screenshots of the pages at desktop and phone widths go to the folder
// named by KITH_SCREENSHOTS (docs/console to refresh the ones the docs
// show), or to a temporary folder.
package web

import (
	"os"
	"testing"

	"github.com/kith-project/kith/internal/kithtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	kithtest.Cleanup()
	os.Exit(code)
}
