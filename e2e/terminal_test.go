package e2e

import (
	"regexp"
	"strings"
	"testing"

	"github.com/kith-project/kith/internal/kithtest"
	"github.com/kith-project/kith/seed"
)

// screenWords are words the screens of these tests show besides any
// phrase; the test phrase has none of them, so that a phrase word on the
// screen can only be a leak.
var screenWords = strings.Fields(`type or paste your seed phrase then press enter the words are not shown
of and a whole lock passphrase for this device keys none restored user device index warning is new
to this home check that it id on another devices shows different one means bip39 exit next mark hint
kith run if forgotten make again from force again try two differ an empty line ends early`)

// testPhrase is a fixed 24-word phrase whose first 12 words are not a
// phrase, so that reading it cannot stop half way whatever the timing,
// and that has none of screenWords.
func testPhrase(t *testing.T) []string {
	entropy := make([]byte, 32)
	for i := 0; i < 256; i++ {
		for j := range entropy {
			entropy[j] = byte(i*31 + j*7 + 1)
		}
		p, err := seed.PhraseFromEntropy(entropy)
		if err != nil {
			t.Fatal(err)
		}
		words := strings.Fields(p.String())
		if _, err := seed.ParsePhrase(strings.Join(words[:12], " ")); err == nil {
			continue
		}
		clean := true
		for _, w := range words {
			for _, s := range screenWords {
				clean = clean && w != s
			}
		}
		if clean {
			return words
		}
	}
	t.Fatal("no test phrase")
	return nil
}

// The seed phrase pasted on a terminal over four lines: restore reads all
// of it with echo off, shows only the count, succeeds, and leaves nothing
// for the shell; the words never reach the screen.
func TestRestoreOnATerminal(t *testing.T) {
	words := testPhrase(t)
	d := kithtest.NewDevice(t)
	want := kithtest.NewDevice(t)
	var id struct {
		UserID string `json:"user_id"`
	}
	want.JSON(&id, strings.Join(words, " "), "restore", "--device", "0", "--name", "t")

	term := kithtest.NewTerminal(t, 100, 40,
		`"$KITH" --home "$H" restore --device 0 --name t; echo "exit=$?"; IFS= read -r rest; echo "next=[$rest]"; exec cat >/dev/null`,
		"KITH="+kithtest.Binary(t), "H="+d.Home)
	term.WaitFor("ends the phrase early.")
	term.Type(strings.Join(words[0:6], " "), strings.Join(words[6:12], " "), strings.Join(words[12:18], " "), strings.Join(words[18:24], " "))
	term.WaitFor("Lock passphrase")
	term.Type("")
	screen := term.WaitFor("exit=")
	if !strings.Contains(screen, "exit=0") || !strings.Contains(screen, "Restored.") || !strings.Contains(screen, id.UserID) {
		t.Fatalf("restore on a terminal did not succeed:\n%s", screen)
	}
	term.Type("MARK")
	screen = term.WaitFor("next=[")
	if !strings.Contains(screen, "next=[MARK]") {
		t.Errorf("the shell read something restore left behind:\n%s", screen)
	}
	t.Logf("the screen:\n%s", screen)
	if !strings.Contains(screen, "24 words") {
		t.Errorf("no word count shown:\n%s", screen)
	}
	for _, w := range words {
		if regexp.MustCompile(`\b` + w + `\b`).MatchString(screen) {
			t.Errorf("the phrase word %q is on the screen:\n%s", w, screen)
		}
	}
}

// Lock passphrases on a terminal: init asks for a new one twice and again
// when the two differ; keys lock checks the current one first, with
// tries left, then asks for the new one twice. KITH_PASSPHRASE with a
// wrong value is told so, with what to do when it is forgotten.
func TestPassphrasePromptsOnATerminal(t *testing.T) {
	d := kithtest.NewDevice(t)
	term := kithtest.NewTerminal(t, 100, 40,
		`"$KITH" --home "$H" init --name t >/dev/null; echo "init=$?"; "$KITH" --home "$H" keys lock; echo "lock=$?"; exec cat >/dev/null`,
		"KITH="+kithtest.Binary(t), "H="+d.Home)
	term.WaitFor("(Enter for none): ")
	term.Type("first")
	term.WaitFor("Type it again: ")
	term.Type("second")
	term.WaitFor("The two differ.")
	term.WaitForN("(Enter for none): ", 2)
	term.Type("sesame")
	term.WaitForN("Type it again: ", 2)
	term.Type("sesame")
	if screen := term.WaitFor("init="); !strings.Contains(screen, "init=0") {
		t.Fatalf("init:\n%s", screen)
	}
	term.WaitFor("Current lock passphrase: ")
	term.Type("wrong")
	term.WaitFor("try again (2 left)")
	term.WaitForN("Current lock passphrase: ", 2)
	term.Type("sesame")
	term.WaitFor("New lock passphrase: ")
	term.Type("opened")
	term.WaitForN("Type it again: ", 3)
	term.Type("opened")
	screen := term.WaitFor("lock=")
	if !strings.Contains(screen, "lock=0") || !strings.Contains(screen, "sealed with the new lock passphrase") {
		t.Fatalf("keys lock:\n%s", screen)
	}
	for _, secret := range []string{"first", "second", "sesame", "wrong", "opened"} {
		if strings.Contains(screen, secret) {
			t.Errorf("%q is on the screen:\n%s", secret, screen)
		}
	}

	d.Env = []string{"KITH_PASSPHRASE=sesame", "KITH_NEW_PASSPHRASE=other"}
	res := d.Run("", "keys", "lock")
	if res.Code != 2 || !strings.Contains(res.Stderr, "kith: the lock passphrase is wrong (it came from KITH_PASSPHRASE)\n") ||
		!strings.Contains(res.Stderr, "kith: hint: if it is forgotten, make this device again from the seed phrase") ||
		strings.Contains(res.Stderr, "set KITH_PASSPHRASE") {
		t.Errorf("a wrong KITH_PASSPHRASE: %s", res)
	}
	d.Env = []string{"KITH_PASSPHRASE=opened", "KITH_NEW_PASSPHRASE=other"}
	if res := d.Run("", "keys", "lock"); res.Code != 0 {
		t.Errorf("the right KITH_PASSPHRASE: %s", res)
	}
}

// A destructive command asks on a terminal, and --yes skips the question.
func TestConfirmationsOnATerminal(t *testing.T) {
	d := kithtest.NewDevice(t)
	d.JSON(new(struct{}), "", "init")
	term := kithtest.NewTerminal(t, 100, 40,
		`"$KITH" --home "$H" init --force >/dev/null; echo "a=$?"; "$KITH" --home "$H" init --force --yes >/dev/null; echo "b=$?"; exec cat >/dev/null`,
		"KITH="+kithtest.Binary(t), "H="+d.Home)
	term.WaitFor("Replace it? [y/N]")
	term.Type("n")
	if screen := term.WaitFor("a="); !strings.Contains(screen, "a=1") || !strings.Contains(screen, "not confirmed: nothing was changed") {
		t.Fatalf("init --force answered no:\n%s", screen)
	}
	term.WaitFor("(Enter for none): ")
	term.Type("")
	screen := term.WaitFor("b=")
	if !strings.Contains(screen, "b=0") || strings.Count(screen, "Replace it?") != 1 {
		t.Fatalf("init --force --yes:\n%s", screen)
	}
	// Without a terminal, no question: scripts keep working.
	if res := d.Run("", "init", "--force"); res.Code != 0 || strings.Contains(res.Stderr, "Replace it?") {
		t.Fatalf("init --force from a script: %s", res)
	}
}

// Three new lock passphrases that differ from their second typing fail:
// the keys are never left unsealed by a typo.
func TestNewPassphraseGivesUpAfterThreeTries(t *testing.T) {
	d := kithtest.NewDevice(t)
	term := kithtest.NewTerminal(t, 100, 40,
		`"$KITH" --home "$H" init >/dev/null; echo "init=$?"; exec cat >/dev/null`,
		"KITH="+kithtest.Binary(t), "H="+d.Home)
	for i := 1; i <= 3; i++ {
		term.WaitForN("(Enter for none): ", i)
		term.Type("one")
		term.WaitForN("Type it again: ", i)
		term.Type("other")
	}
	screen := term.WaitFor("init=")
	if !strings.Contains(screen, "init=2") || !strings.Contains(screen, "after 3 tries") {
		t.Fatalf("init after three differing passphrases:\n%s", screen)
	}
	if res := d.Run("", "id"); res.Code != 1 || !strings.Contains(res.Stderr, "no kith identity") {
		t.Fatalf("the home holds an identity after a failed init: %s", res)
	}
}
