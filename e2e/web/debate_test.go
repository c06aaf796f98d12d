package web

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// pair makes a and b friends through the command line, as e2e's pair does.
func pair(t *testing.T, a, b *person) {
	t.Helper()
	dir := t.TempDir()
	show := func(p *person) string {
		png := filepath.Join(dir, p.name+".png")
		var s struct{ Code string }
		p.dev.JSON(&s, "", "pair", "show", "--png", png)
		return png
	}
	aPNG, bPNG := show(a), show(b)
	var first, second struct{ Status, SAS string }
	a.dev.JSON(&first, "", "pair", "scan", "--no-wait", bPNG)
	b.dev.JSON(&second, "", "pair", "scan", aPNG)
	if second.Status != "paired" || first.SAS != second.SAS {
		t.Fatalf("pairing %s and %s: %+v, %+v", a.name, b.name, first, second)
	}
}

// login opens p's console in b at the page given by hash.
func (b *browser) login(p *person, hash string) {
	b.t.Helper()
	b.do(p.name+" logs in", chromedp.Navigate(p.loginURL(b.t)), chromedp.WaitVisible(chromedp.CSS("nav")))
	b.do(p.name+" opens "+hash, chromedp.Navigate(p.agentOrigin(b.t)+"/"+hash))
	// A marker that a reload would lose: the pages must update live.
	eval[bool](b, `window.kithNoReload = true`)
}

// setValue sets a form field's value, as a person choosing from a list
// does; typing goes through SendKeys.
func (b *browser) setValue(sel, v string) {
	b.t.Helper()
	if !eval[bool](b, fmt.Sprintf(`(function(){var e=document.querySelector(%q);if(!e)return false;e.value=%q;return true;})()`, sel, v)) {
		b.t.Fatalf("no %s to set\n%s", sel, b.dump())
	}
}

func (b *browser) notReloaded() {
	b.t.Helper()
	if !eval[bool](b, `window.kithNoReload === true`) {
		b.t.Fatal("the page was reloaded")
	}
}

// A debate through three consoles: alice starts it from the form (a rule
// refused with its position first), bob and carol post through theirs,
// all three vote with the buttons, and every page shows the decided
// outcome, live. Peer text stays text.
func TestDebateThroughConsoles(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	alice := newPerson(t, "alice", "127.0.0.2")
	bob := newPerson(t, "bob", "127.0.0.3")
	carol := newPerson(t, "carol", "127.0.0.4")
	pair(t, alice, bob)
	pair(t, alice, carol)
	ba := newBrowser(t, "")
	bb, bc := ba.tab(), ba.tab()

	start := time.Now()
	ba.login(alice, "#/conv/new")
	const topic = `Greenhouse <img src=x onerror="document.title='owned'">`
	ba.do("alice fills the form",
		chromedp.WaitVisible(chromedp.CSS("#m-"+bob.id.UserID)),
		chromedp.SendKeys(chromedp.CSS("#new-topic"), topic),
		chromedp.Click(chromedp.CSS("#m-"+bob.id.UserID)),
		chromedp.Click(chromedp.CSS("#m-"+carol.id.UserID)),
	)
	ba.setValue("#new-rule", "")
	ba.do("alice types a rule", chromedp.SendKeys(chromedp.CSS("#new-rule"), `quorum(2/3) && majority("yes") &&`))
	ba.waitText("#rule-error", "line 1, column")
	caret := ba.text("#rule-caret")
	if !strings.HasSuffix(caret, "^") {
		t.Fatalf("the rule error shows no position: %q", caret)
	}
	ba.setValue("#new-rule", "")
	ba.do("alice fixes the rule",
		chromedp.SendKeys(chromedp.CSS("#new-rule"), `quorum(2/3) && majority("yes")`))
	ba.waitText("#rule-ok", "compiles")
	ba.checkLabels("new conversation")
	ba.do("alice starts the debate", chromedp.Click(chromedp.CSS("#new-create")), chromedp.WaitVisible(chromedp.CSS("#conv-topic")))
	loc := eval[string](ba, `location.hash`)
	id := strings.TrimPrefix(loc, "#/conv/")
	if len(id) != 64 {
		t.Fatalf("after creating, the page is at %q", loc)
	}
	if got := ba.text("#conv-topic"); got != topic {
		t.Fatalf("the topic reads %q, want %q as text", got, topic)
	}
	eval[bool](ba, `window.kithNoReload = true`)

	bb.login(bob, "#/conv/"+id)
	bc.login(carol, "#/conv/"+id)
	for _, b := range []*browser{bb, bc} {
		b.waitText("#conv-topic", "Greenhouse")
	}
	const position, argument = "Yes: <b>winter</b> tomatoes", "The shade hurts the roses"
	bb.do("bob opens the form", chromedp.WaitVisible(chromedp.CSS("#post-body")))
	bb.setValue("#post-kind", "position")
	bb.do("bob posts a position",
		chromedp.SendKeys(chromedp.CSS("#post-body"), position), chromedp.Click(chromedp.CSS("#post-send")))
	bc.do("carol opens the form", chromedp.WaitVisible(chromedp.CSS("#post-body")))
	bc.setValue("#post-kind", "argument")
	bc.do("carol posts an argument",
		chromedp.SendKeys(chromedp.CSS("#post-body"), argument), chromedp.Click(chromedp.CSS("#post-send")))
	for _, b := range []*browser{ba, bb, bc} {
		b.waitText("#messages", position)
		b.waitText("#messages", argument)
		if n := eval[int](b, `document.querySelectorAll("#messages b, #thread img").length`); n != 0 {
			t.Fatalf("peer text became markup: %d elements", n)
		}
	}
	ba.waitText(`#progress li[data-choice="yes"]`, "2 more yes votes make the rule true")

	ba.do("alice votes yes", chromedp.Click(chromedp.CSS("#vote-yes")))
	for _, b := range []*browser{ba, bb, bc} {
		b.waitText(`#tally tr[data-choice="yes"] td`, "1")
		b.waitText(`#progress li[data-choice="yes"]`, "1 more yes vote makes the rule true")
	}
	bb.checkLabels("thread")
	bb.screenshot("thread")
	bc.do("carol votes no", chromedp.Click(chromedp.CSS("#vote-no")))
	// Bob votes once his page shows carol's vote, as a person would: a
	// click while the thread is redrawn could land on the old button.
	bb.waitText(`#tally tr[data-choice="no"] td`, "1")
	bb.do("bob votes yes", chromedp.Click(chromedp.CSS("#vote-yes")))
	for _, b := range []*browser{ba, bb, bc} {
		b.waitText("#outcome-result", "yes")
		b.waitText("#conv-status", "decided")
		b.notReloaded()
	}
	t.Logf("the debate decided on all three pages %v after alice opened her console", time.Since(start).Round(10*time.Millisecond))
	if title := eval[string](ba, `document.title`); title == "owned" {
		t.Fatal("the topic's markup ran")
	}
	bc.screenshot("decided")

	// Alice archives the decided debate from her archive page, which then
	// shows the blob and its holders.
	ba.do("alice opens her archives", chromedp.Navigate(alice.agentOrigin(t)+"/#/archives"), chromedp.WaitVisible(chromedp.CSS("#archive-empty")))
	ba.do("alice archives now", chromedp.Click(chromedp.CSS("#archive-now")))
	ba.waitJS("the archive page lists blobs", `document.querySelectorAll("#archive-table tbody tr").length >= 1`)
	t.Logf("alice's archive page: %s; holders of the first blob: %s", ba.text("#archive-summary"), ba.text("#archive-table tbody td:last-child"))
	ba.screenshot("archives")
}
