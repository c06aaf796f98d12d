package web

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Two people pair through their consoles by camera: each browser's fake
// camera films the invite the other console shows; both pages show the
// same check code, and each agent then lists the other as a friend.
func TestPairByCamera(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	alice := newPerson(t, "alice", "127.0.0.2")
	bob := newPerson(t, "bob", "127.0.0.3")
	dir := t.TempDir()
	camA, camB := filepath.Join(dir, "alice-camera.mjpeg"), filepath.Join(dir, "bob-camera.mjpeg")
	// The camera files are read when a page opens the camera, so they can
	// be written once the consoles show their invites.
	ba, bb := newBrowser(t, camA), newBrowser(t, camB)
	start := time.Now()
	ba.do("alice logs in", chromedp.Navigate(alice.loginURL(t)), chromedp.WaitVisible(chromedp.CSS("#invite-qr[data-code]")))
	bb.do("bob logs in", chromedp.Navigate(bob.loginURL(t)), chromedp.WaitVisible(chromedp.CSS("#invite-qr[data-code]")))
	codeOf := func(b *browser) string {
		code := b.attr("#invite-qr", "data-code")
		if code == "" {
			t.Fatal("the pairing page shows no invite")
		}
		return code
	}
	mjpegOf(t, codeOf(bb), camA) // alice's camera films bob's screen
	mjpegOf(t, codeOf(ba), camB)
	ba.checkLabels("pairing")
	ba.screenshot("pair")

	t.Logf("both consoles show their invites after %v", time.Since(start).Round(10*time.Millisecond))
	ba.do("alice starts her camera", chromedp.Click(chromedp.CSS("#camera-start")))
	ba.waitText("#pair-status", "Waiting")
	t.Logf("alice's camera read bob's code after %v", time.Since(start).Round(10*time.Millisecond))
	bb.do("bob starts his camera", chromedp.Click(chromedp.CSS("#camera-start")))
	bb.waitText("#pair-status", "Paired")
	ba.waitText("#pair-status", "Paired")
	t.Logf("paired through both consoles in %v (from starting the cameras: two camera decodes and the pairing)", time.Since(start).Round(10*time.Millisecond))

	sasA, sasB := ba.text("#sas"), bb.text("#sas")
	if len(sasA) < 6 || sasA != sasB {
		t.Fatalf("check codes: alice's page %q, bob's page %q", sasA, sasB)
	}
	if n := ba.text("#peer-name"); n != "bob" {
		t.Fatalf("alice's page names %q", n)
	}
	if n := bb.text("#peer-name"); n != "alice" {
		t.Fatalf("bob's page names %q", n)
	}
	ba.screenshot("paired")
	var fs []struct {
		UserID string `json:"user_id"`
		Status string `json:"status"`
		SAS    string `json:"sas"`
	}
	alice.dev.JSON(&fs, "", "friends")
	if len(fs) != 1 || fs[0].UserID != bob.id.UserID || fs[0].Status != "friend" || fs[0].SAS != sasA {
		t.Fatalf("alice's friends: %+v (bob %s, check code %s)", fs, bob.id.UserID, sasA)
	}

	// The friends page lists bob, live: online once presence says so.
	ba.do("alice opens her friends", chromedp.Navigate(alice.agentOrigin(t)+"/#/friends"))
	ba.waitText("#friends", "bob")
	ba.waitText("#friends", "online")
	ba.screenshot("friends")
	// Block and unblock bob with the page's buttons: state changes made by
	// the page itself pass the checks.
	ba.do("alice blocks bob", chromedp.Click(chromedp.CSS(`#friends button[data-action="block"]`)))
	ba.waitText(`#friends [data-status]`, "blocked")
	alice.dev.JSON(&fs, "", "friends")
	if len(fs) != 1 || fs[0].Status != "blocked" {
		t.Fatalf("after the page's block: %+v", fs)
	}
	ba.do("alice unblocks bob", chromedp.Click(chromedp.CSS(`#friends button[data-action="unblock"]`)))
	ba.waitText(`#friends [data-status]`, "friend")
	ba.do("alice opens her devices", chromedp.Navigate(alice.agentOrigin(t)+"/#/devices"))
	ba.waitText("#devices-table", "this device")
	ba.screenshot("devices")
}
