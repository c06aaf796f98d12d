package cli

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kith-project/kith/seed"
)

// lines feeds collectPhrase one line at a time, with nothing pending.
func lines(ls ...string) func() (string, error) {
	return func() (string, error) {
		if len(ls) == 0 {
			return "", io.EOF
		}
		l := ls[0]
		ls = ls[1:]
		return l + "\n", nil
	}
}

func TestCollectPhraseCountsAndStops(t *testing.T) {
	p, err := seed.Generate(24)
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Fields(p.String())
	// A phrase none of whose first 12, 15, 18 or 21 words is a phrase of
	// its own (reading would stop there), and with no word the progress
	// lines hold anyway ("phrase", "whole"), so that finding a word in
	// them means it leaked.
	ownWords := regexp.MustCompile(`\b(phrase|whole|words?|of|or|a)\b`)
	prefixIsPhrase := func(w []string) bool {
		for _, n := range []int{12, 15, 18, 21} {
			if _, err := seed.ParsePhrase(strings.Join(w[:n], " ")); err == nil {
				return true
			}
		}
		return false
	}
	for {
		if !prefixIsPhrase(w) && !ownWords.MatchString(p.String()) {
			break
		}
		p, _ = seed.Generate(24)
		w = strings.Fields(p.String())
	}
	var progress strings.Builder
	next := lines(strings.Join(w[:6], " "), strings.Join(w[6:12], " "), strings.Join(w[12:18], " "), strings.Join(w[18:], " "), "left for the shell")
	text, err := collectPhrase(next, func() bool { return false }, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := seed.ParsePhrase(text); err != nil || got.String() != p.String() {
		t.Fatalf("read %q: %v", text, err)
	}
	if line, _ := next(); line != "left for the shell\n" {
		t.Errorf("collectPhrase read past the phrase")
	}
	for _, want := range []string{"6 of 12 or 24 words…", "12 of 24 words…", "18 of 24 words…", "24 words: a whole phrase."} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress.String())
		}
	}
	for _, word := range w {
		if regexp.MustCompile(`\b` + word + `\b`).MatchString(progress.String()) {
			t.Errorf("progress shows the word %q", word)
		}
	}

	// An empty line stops early, for the parser to explain.
	text, _ = collectPhrase(lines("abandon ability", "", "more"), func() bool { return false }, io.Discard)
	if countWords(text) != 2 {
		t.Errorf("an empty line did not stop: %q", text)
	}
}

func TestKeysExportToAFile(t *testing.T) {
	p, _ := seed.Generate(12)
	out := filepath.Join(t.TempDir(), "device0.agekey")
	code, stdout, stderr := run(t, p.String(), nil, "--json", "keys", "export", "--device", "0", "-o", out)
	if code != 0 || strings.Contains(stdout, "AGE-SECRET-KEY") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	var res struct {
		File         string `json:"file"`
		AgeRecipient string `json:"age_recipient"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.File != out || !strings.HasPrefix(res.AgeRecipient, "age1") {
		t.Fatalf("%q: %v", stdout, err)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the key file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(out)
	if !strings.Contains(string(b), "AGE-SECRET-KEY-") {
		t.Fatalf("the key file holds %q", b)
	}
	code, _, stderr = run(t, p.String(), nil, "keys", "export", "--device", "0", "-o", out)
	if code != 2 || !strings.Contains(stderr, "already exists") {
		t.Fatalf("overwriting: exit %d %q", code, stderr)
	}
	if b2, _ := os.ReadFile(out); string(b2) != string(b) {
		t.Fatal("the key file was overwritten")
	}
	// A failed export leaves no file.
	other := filepath.Join(t.TempDir(), "k")
	if code, _, _ := run(t, "abandon", nil, "keys", "export", "--device", "0", "-o", other); code != 2 {
		t.Fatalf("a bad phrase: exit %d", code)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Fatalf("a failed export left %s: %v", other, err)
	}
}

func TestRestoreWarnsOfANewUser(t *testing.T) {
	home := t.TempDir()
	code, out, stderr := run(t, "", nil, "--home", home, "--json", "init")
	var res initResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("init: %d %s", code, stderr)
	}
	// The same phrase with an extra word is another user: a warning.
	code, _, stderr = run(t, res.Mnemonic, map[string]string{"KITH_SEED_PASSPHRASE": "extra"}, "--home", home, "restore", "--device", "0", "--force")
	if code != 0 || !strings.Contains(stderr, "kith: warning: user ") || !strings.Contains(stderr, "is not the user this home held ("+res.UserID.ID()[:12]+")") {
		t.Fatalf("restore with another extra word: %d %q", code, stderr)
	}
	// Without --force the home is refused before the phrase is read.
	code, _, stderr = run(t, "", nil, "--home", home, "restore", "--device", "0")
	if code != 1 || !strings.Contains(stderr, "already holds an identity") {
		t.Fatalf("restore into a full home: %d %q", code, stderr)
	}
}
