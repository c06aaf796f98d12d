package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// maxPhraseInput bounds what is read from standard input as a phrase.
const maxPhraseInput = 8 << 10

func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}

func (g *globals) terminal(f any) bool {
	return g.env.IsTerminal != nil && g.env.IsTerminal(f)
}

// readPhrase reads a seed phrase from standard input. On a terminal it
// prompts and reads one line; otherwise it reads everything (a phrase may be
// pasted across several lines).
func (g *globals) readPhrase() (string, error) {
	if g.terminal(g.env.Stdin) {
		fmt.Fprint(g.env.Stderr, "Type your seed phrase and press Enter: ")
		line, err := bufio.NewReader(io.LimitReader(g.env.Stdin, maxPhraseInput)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the seed phrase: %w", err)
		}
		return line, nil
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

// readSecret reads one secret line with echo off from the terminal.
func (g *globals) readSecret(prompt string) (string, error) {
	f, ok := g.env.Stdin.(*os.File)
	if !ok || !g.terminal(f) {
		return "", errors.New("no terminal to ask on")
	}
	fmt.Fprint(g.env.Stderr, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
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
	p, err := g.readSecret("BIP39 passphrase (the extra word): ")
	if err != nil {
		return "", badInputf("--seed-passphrase needs a terminal to ask on; set KITH_SEED_PASSPHRASE instead")
	}
	if confirm {
		again, err := g.readSecret("Type it again: ")
		if err != nil {
			return "", err
		}
		if again != p {
			return "", badInputf("the two passphrases differ: run the command again")
		}
	}
	return p, nil
}

// lockPassphrase returns the device's lock passphrase from KITH_PASSPHRASE,
// or asks on a terminal when ask is set. nil means none.
func (g *globals) lockPassphrase(ask bool, prompt string) ([]byte, error) {
	if v := g.env.Getenv("KITH_PASSPHRASE"); v != "" {
		return []byte(v), nil
	}
	if !ask {
		return nil, nil
	}
	p, err := g.readSecret(prompt)
	if err != nil {
		return nil, nil
	}
	if p == "" {
		return nil, nil
	}
	return []byte(p), nil
}
