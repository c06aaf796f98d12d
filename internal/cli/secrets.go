package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"unicode"

	"github.com/kith-project/kith/internal/keystore"
	"github.com/kith-project/kith/seed"
	"golang.org/x/term"
)

// maxPhraseInput bounds what is read from standard input as a phrase.
const maxPhraseInput = 8 << 10

// maxTries is how many times a prompt on a terminal asks before giving up.
const maxTries = 3

// forgotHint is what to do when the lock passphrase is forgotten.
const forgotHint = `if it is forgotten, make this device again from the seed phrase: "kith restore --force --device I"`

func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}

func (g *globals) terminal(f any) bool {
	return g.env.IsTerminal != nil && g.env.IsTerminal(f)
}

// stdinTerminal returns standard input when it is a terminal.
func (g *globals) stdinTerminal() (*os.File, bool) {
	f, ok := g.env.Stdin.(*os.File)
	return f, ok && g.terminal(f)
}

// readPhrase reads a seed phrase from standard input. On a terminal it
// prompts and reads words, with echo off, across lines until they make a
// phrase; otherwise it reads everything (a phrase may be piped across
// several lines).
func (g *globals) readPhrase() (string, error) {
	if f, ok := g.stdinTerminal(); ok {
		return g.readPhraseTerminal(f)
	}
	b, err := io.ReadAll(io.LimitReader(g.env.Stdin, maxPhraseInput+1))
	if err != nil {
		return "", fmt.Errorf("reading the seed phrase from standard input: %w", err)
	}
	if len(b) > maxPhraseInput {
		return "", badInputf("standard input is too long to be a seed phrase: give only the words")
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", badInputf("no seed phrase on standard input: pipe or type the words (never pass them as arguments)")
	}
	return string(b), nil
}

// readPhraseTerminal reads the phrase from the terminal f with echo off for
// the whole phrase, so that neither the words nor the lines of a paste are
// shown, and leaves nothing unread behind for the shell.
func (g *globals) readPhraseTerminal(f *os.File) (string, error) {
	fd := int(f.Fd())
	const prompt = "Type or paste your seed phrase, then press Enter. The words are not shown;\nan empty line ends the phrase early."
	next := func() (string, error) {
		b, err := term.ReadPassword(fd)
		return string(b), err
	}
	pending := func() bool { return false }
	if restore, err := echoOff(fd); err == nil {
		stop := restoreOnSignal(restore)
		defer stop()
		r := bufio.NewReader(io.LimitReader(f, maxPhraseInput))
		next = func() (string, error) { return r.ReadString('\n') }
		pending = func() bool { return pendingInput(fd) }
	}
	// The prompt comes once echo is off: words typed or pasted the moment
	// it shows must not be echoed by the terminal before we read them.
	fmt.Fprintln(g.env.Stderr, prompt)
	defer flushInput(fd)
	text, err := collectPhrase(next, pending, g.env.Stderr)
	if err != nil {
		return "", fmt.Errorf("reading the seed phrase from the terminal: %w", err)
	}
	if strings.TrimSpace(text) == "" {
		return "", badInputf("no seed phrase was typed")
	}
	return text, nil
}

// restoreOnSignal runs restore and then lets the signal kill the process
// if SIGINT or SIGTERM arrives before stop is called; stop restores too.
func restoreOnSignal(restore func()) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case s := <-sigs:
			restore()
			signal.Stop(sigs)
			if p, err := os.FindProcess(os.Getpid()); err == nil {
				p.Signal(s)
			}
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
		<-exited
		restore()
	}
}

// collectPhrase reads lines with next until they hold a whole phrase: a
// valid number of words that parses, with no more input pending (the rest
// of a paste). An empty line or the end of input stops early; more than 24
// words stop too, for the parser to explain. After each line it writes the
// count so far, never the words, to progress.
func collectPhrase(next func() (string, error), pending func() bool, progress io.Writer) (string, error) {
	var text strings.Builder
	for text.Len() <= maxPhraseInput {
		line, err := next()
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		eof := err != nil
		if strings.TrimSpace(line) == "" {
			if eof || text.Len() > 0 {
				break
			}
			continue
		}
		text.WriteString(strings.TrimRight(line, "\r\n"))
		text.WriteString("\n")
		n := countWords(text.String())
		if n > 24 || eof {
			break
		}
		if n == 12 || n == 15 || n == 18 || n == 21 || n == 24 {
			if pending() {
				continue
			}
			if _, err := seed.ParsePhrase(text.String()); err == nil {
				fmt.Fprintf(progress, "  %d words: a whole phrase.\n", n)
				break
			}
			if n == 24 {
				break
			}
			fmt.Fprintf(progress, "  %d of 24 words…\n", n)
			continue
		}
		if pending() {
			continue
		}
		if n < 12 {
			fmt.Fprintf(progress, "  %d of 12 or 24 words…\n", n)
		} else {
			fmt.Fprintf(progress, "  %d of 24 words…\n", n)
		}
	}
	return text.String(), nil
}

// countWords counts the words of a phrase typed so far: the tokens with a
// letter in them, so that a numbering ("1.", "2)") does not count.
func countWords(s string) int {
	n := 0
	for _, tok := range strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == ',' }) {
		if strings.IndexFunc(tok, unicode.IsLetter) >= 0 {
			n++
		}
	}
	return n
}

// readSecret reads one secret line with echo off from the terminal.
func (g *globals) readSecret(prompt string) (string, error) {
	f, ok := g.stdinTerminal()
	if !ok {
		return "", errors.New("no terminal to ask on")
	}
	fd := int(f.Fd())
	// Echo goes off before the prompt shows, so that nothing typed at once
	// is echoed before ReadPassword turns it off itself.
	if restore, err := echoOff(fd); err == nil {
		stop := restoreOnSignal(restore)
		defer stop()
	}
	fmt.Fprint(g.env.Stderr, prompt)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(g.env.Stderr)
	if err != nil {
		return "", fmt.Errorf("reading from the terminal: %w", err)
	}
	return string(b), nil
}

// seedPassphrase returns the BIP39 passphrase: KITH_SEED_PASSPHRASE, or a
// prompt when asked for with --seed-passphrase, or "". confirm asks twice.
func (g *globals) seedPassphrase(prompt, confirm bool) (string, error) {
	if v := g.env.Getenv("KITH_SEED_PASSPHRASE"); v != "" {
		return v, nil
	}
	if !prompt {
		return "", nil
	}
	if !confirm {
		p, err := g.readSecret("BIP39 passphrase (the extra word): ")
		if err != nil {
			return "", badInputf("--seed-passphrase needs a terminal to ask on; set KITH_SEED_PASSPHRASE instead")
		}
		return p, nil
	}
	p, err := g.newSecret("BIP39 passphrase (the extra word): ", true)
	if errors.Is(err, errNoTerminal) {
		return "", badInputf("--seed-passphrase needs a terminal to ask on; set KITH_SEED_PASSPHRASE instead")
	}
	return p, err
}

var errNoTerminal = errors.New("no terminal to ask on")

// newSecret asks for a new secret on the terminal, twice, and asks again,
// up to maxTries times, when the two differ. An empty answer is allowed
// only with allowEmpty, and is not asked again.
func (g *globals) newSecret(prompt string, allowEmpty bool) (string, error) {
	if _, ok := g.stdinTerminal(); !ok {
		return "", errNoTerminal
	}
	for try := 1; ; try++ {
		p, err := g.readSecret(prompt)
		if err != nil {
			return "", err
		}
		if p == "" {
			if allowEmpty {
				return "", nil
			}
			fmt.Fprintln(g.env.Stderr, "An empty passphrase is not allowed here.")
		} else {
			again, err := g.readSecret("Type it again: ")
			if err != nil {
				return "", err
			}
			if again == p {
				return p, nil
			}
			fmt.Fprintln(g.env.Stderr, "The two differ.")
		}
		if try == maxTries {
			return "", badInputf("no passphrase was given twice the same after %d tries: run the command again", maxTries)
		}
		fmt.Fprintln(g.env.Stderr, "Try again.")
	}
}

// newLockPassphrase returns a new lock passphrase for a device being made:
// KITH_PASSPHRASE, or asked twice on a terminal (Enter for none), or nil.
func (g *globals) newLockPassphrase() ([]byte, error) {
	if v := g.env.Getenv("KITH_PASSPHRASE"); v != "" {
		return []byte(v), nil
	}
	p, err := g.newSecret("Lock passphrase for this device's keys (Enter for none): ", true)
	switch {
	case errors.Is(err, errNoTerminal):
		return nil, nil
	case err != nil:
		return nil, err
	case p == "":
		return nil, nil
	}
	return []byte(p), nil
}

// lockPassphrase returns the current lock passphrase of the keys in dir
// when they are sealed (nil when they are not): KITH_PASSPHRASE, checked, or
// asked on a terminal up to maxTries times until it opens the keys.
func (g *globals) lockPassphrase(dir, prompt string) ([]byte, error) {
	sealed, err := keystore.IsSealed(dir)
	if err != nil || !sealed {
		return nil, err
	}
	check := func(p []byte) error {
		s, err := keystore.Load(dir, p)
		if err == nil {
			s.Zero()
		}
		return err
	}
	if v := g.env.Getenv("KITH_PASSPHRASE"); v != "" {
		if err := check([]byte(v)); err != nil {
			if errors.Is(err, keystore.ErrWrongPassphrase) {
				return nil, badInput(wrongEnvPassphrase{})
			}
			return nil, err
		}
		return []byte(v), nil
	}
	if _, ok := g.stdinTerminal(); !ok {
		return nil, keystore.ErrLocked
	}
	for try := 1; ; try++ {
		p, err := g.readSecret(prompt)
		if err != nil {
			return nil, err
		}
		err = check([]byte(p))
		if err == nil {
			return []byte(p), nil
		}
		if !errors.Is(err, keystore.ErrWrongPassphrase) {
			return nil, err
		}
		if try == maxTries {
			return nil, badInput(fmt.Errorf("%w (%d tries)", keystore.ErrWrongPassphrase, maxTries))
		}
		fmt.Fprintf(g.env.Stderr, "That is not the lock passphrase; try again (%d left).\n", maxTries-try)
	}
}

// wrongEnvPassphrase is a wrong lock passphrase in KITH_PASSPHRASE.
type wrongEnvPassphrase struct{}

func (wrongEnvPassphrase) Error() string {
	return "the lock passphrase is wrong (it came from KITH_PASSPHRASE)"
}

func (wrongEnvPassphrase) Is(target error) bool { return target == keystore.ErrWrongPassphrase }

// confirm asks on a terminal whether to go on with a destructive action,
// after saying what it does. Without a terminal it goes on, as scripts
// expect; --yes skips the question.
func (g *globals) confirm(what, question string) error {
	if !g.terminal(g.env.Stdin) {
		return nil
	}
	fmt.Fprintf(g.env.Stderr, "%s\n%s [y/N] ", what, question)
	line, err := bufio.NewReader(io.LimitReader(g.env.Stdin, 256)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return withHint(errors.New("not confirmed: nothing was changed"), "answer y to go on, or add --yes")
}
