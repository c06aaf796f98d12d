package web

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/kithtest"
)

// archPerson is device index of the user of phrase (a new user when
// phrase is ""), its agent running archive passes only when asked, with
// a console. It returns the person and the user's phrase.
func archPerson(t *testing.T, name, host, phrase string, index int) (*person, string) {
	t.Helper()
	p := &person{name: name, dev: kithtest.NewDevice(t)}
	var id struct {
		Mnemonic string `json:"mnemonic"`
	}
	if phrase == "" {
		p.dev.JSON(&id, "", "init", "--name", name, "--words", "12")
		phrase = id.Mnemonic
	} else {
		p.dev.JSON(&id, phrase, "restore", "--device", strconv.Itoa(index), "--name", name)
	}
	p.dev.JSON(&p.id, "", "id")
	p.agent = p.dev.Start(kithtest.FreeAddr(t, host), "--heartbeat", "300ms", "--web", "127.0.0.1:0",
		"--archive-every", "1h", "--archive-settle", "1s")
	return p, phrase
}

// Opening an archived conversation in the console: the page shows a bar
// fed by the agent's progress as the blobs arrive, which reaches its end,
// then the thread. Alice has two devices, as restoring needs (the outer
// layer is sealed to her other device's key); bob is the other member.
func TestRestoreProgressInConsole(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	a0, phrase := archPerson(t, "alice", "127.0.0.21", "", 0)
	a1, _ := archPerson(t, "alice-1", "127.0.0.22", phrase, 1)
	bob, _ := archPerson(t, "bob", "127.0.0.23", "", 0)
	pair(t, a0, a1)
	pair(t, a0, bob)

	const topic, body = "Where the spare key lives", "Under the third flowerpot"
	var res control.ConvNewResult
	a0.dev.JSON(&res, "", "conv", "new", "--topic", topic, "--pattern", "discussion", "--with", bob.id.UserID, "--rule", `tally("yes") >= 1`)
	id := res.ConversationID
	a0.dev.JSON(new(control.ConvMessageResult), "", "conv", "post", id, "--kind", "text", body)
	a0.dev.JSON(new(control.ConvMessageResult), "", "conv", "vote", id, "yes")
	kithtest.Eventually(t, 2*time.Minute, "the conversation archived", func() error {
		a0.dev.JSON(new(control.ArchiveNowResult), "", "archive", "now")
		var list []control.ConvSummary
		a0.dev.JSON(&list, "", "conv", "list")
		for _, c := range list {
			if c.ConversationID == id && c.Status == "archived" {
				return nil
			}
		}
		return fmt.Errorf("conv list: %+v", list)
	})

	b := newBrowser(t, "")
	start := time.Now()
	b.login(a0, "#/conv")
	row := `#conv-list tr[data-conv="` + id + `"]`
	b.waitText(row+" .status-pill", "archived")
	b.do("alice opens the archived conversation", chromedp.Click(chromedp.CSS(row+" a")))
	b.waitText("#messages", body)
	b.waitJS("the restore bar at its end", `(function(){var b=document.getElementById("restore-bar");`+
		`return !!b && !document.getElementById("restore").hidden && b.max > 1 && b.value === b.max;})()`)
	t.Logf("the archived thread showed %v after alice opened her console", time.Since(start).Round(10*time.Millisecond))
	if got := b.text("#restore-text"); !regexp.MustCompile(`^\d+(\.\d)? (B|KiB|MiB) of \d+(\.\d)? (B|KiB|MiB): restored$`).MatchString(got) {
		t.Fatalf("the restore bar's text reads %q", got)
	}
	if got := b.text("#conv-topic"); got != topic {
		t.Fatalf("the topic reads %q", got)
	}
	if got := b.text("#conv-status"); got != "archived" {
		t.Fatalf("the status reads %q", got)
	}
	if n := eval[int](b, `Number(document.getElementById("restore-bar").dataset.events)`); n < 1 {
		t.Fatalf("the page got %d progress events from the agent", n)
	}
	b.checkLabels("restored thread")
	t.Logf("%s: %s, from %s progress events", b.text("#restore-label"), b.text("#restore-text"), b.attr("#restore-bar", "data-events"))
	b.screenshot("restore")
}
