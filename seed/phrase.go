package seed

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"unicode"

	"github.com/tyler-smith/go-bip39/wordlists"
	"golang.org/x/text/unicode/norm"
)

// DefaultWords is the length of a phrase made by Generate(0): 24 words, 256
// bits of entropy.
const DefaultWords = 24

const (
	// maxPhraseBytes bounds the text ParsePhrase reads. Twenty-four numbered
	// words of at most eight letters take about 250 bytes; the rest is room
	// for generous white space.
	maxPhraseBytes = 4096
	// maxSuggestRunes bounds the words for which suggestions are computed:
	// list words have at most 8 letters, so a longer word is at least 8
	// edits from all of them and suggestions would be noise.
	maxSuggestRunes = 16
	// maxSuggestions is how many close words a WordError offers.
	maxSuggestions = 3
	// pbkdf2Rounds is BIP39's iteration count.
	pbkdf2Rounds = 2048
	// SeedSize is the length in bytes of a BIP39 seed.
	SeedSize = 64
)

// ErrInvalidPhrase matches, with errors.Is, every error that ParsePhrase
// returns: the phrase as given cannot be used and the user should check it.
var ErrInvalidPhrase = errors.New("not a valid seed phrase")

// phraseError is the type of the phrase sentinels, so that each of them also
// matches ErrInvalidPhrase.
type phraseError string

func (e phraseError) Error() string { return string(e) }

// Is reports whether target is ErrInvalidPhrase.
func (e phraseError) Is(target error) bool { return target == ErrInvalidPhrase }

var (
	// ErrChecksum means that every word is in the list but the phrase's
	// checksum does not match.
	ErrChecksum error = phraseError("the phrase's checksum does not match: a word is probably mistyped or two words are swapped")
	// ErrWordCount means that the phrase does not have 12, 15, 18, 21 or 24
	// words. The wrapping error says how many were given.
	ErrWordCount error = phraseError("wrong number of words")
	// ErrNumbering means that some words of the phrase are numbered and
	// others not, or that the numbers do not run from 1 to the number of
	// words.
	ErrNumbering error = phraseError("the words' numbers are inconsistent")
)

// WordError reports a word that is not in the BIP39 English word list.
//
// Its message repeats the word as typed, which is part of the user's secret:
// show it to the user who typed it, never log it.
type WordError struct {
	Position    int      // 1-based position of the word in the phrase
	Word        string   // the word as read (NFKD, lower case)
	Suggestions []string // up to three closest words of the list, closest first
}

func (e *WordError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "word %d %q is not in the BIP39 English word list", e.Position, e.Word)
	if len(e.Suggestions) > 0 {
		b.WriteString("; did you mean ")
		for i, s := range e.Suggestions {
			switch {
			case i == 0:
			case i == len(e.Suggestions)-1:
				b.WriteString(" or ")
			default:
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", s)
		}
		b.WriteString("?")
	}
	return b.String()
}

// Is reports whether target is ErrInvalidPhrase.
func (e *WordError) Is(target error) bool { return target == ErrInvalidPhrase }

// Phrase is a valid BIP39 English seed phrase: 12, 15, 18, 21 or 24 words of
// the list whose checksum matches. The zero Phrase has no words and gives no
// seed.
//
// A Phrase is the user's master secret. Its String method returns the words,
// as the user asked to see them; its GoString and slog forms are redacted.
type Phrase struct {
	words []uint16 // indexes into the English list; never modified once set
}

// wordIndex maps each word of the English list to its index.
var wordIndex = func() map[string]uint16 {
	m := make(map[string]uint16, len(wordlists.English))
	for i, w := range wordlists.English {
		m[w] = uint16(i)
	}
	return m
}()

// validCount reports whether n words make a BIP39 phrase.
func validCount(n int) bool {
	switch n {
	case 12, 15, 18, 21, 24:
		return true
	}
	return false
}

// Generate returns a new phrase of the given number of words (12, 15, 18, 21
// or 24; 0 means DefaultWords) from crypto/rand entropy.
func Generate(words int) (Phrase, error) {
	if words == 0 {
		words = DefaultWords
	}
	if !validCount(words) {
		return Phrase{}, fmt.Errorf("%w: cannot make a phrase of %d words; choose 12, 15, 18, 21 or 24", ErrWordCount, words)
	}
	entropy := make([]byte, words*4/3) // 32 bits of entropy for every 3 words
	defer clear(entropy)
	if _, err := rand.Read(entropy); err != nil {
		return Phrase{}, fmt.Errorf("seed: reading random entropy: %w", err)
	}
	return PhraseFromEntropy(entropy)
}

// PhraseFromEntropy returns the phrase that encodes entropy, which must be
// 16, 20, 24, 28 or 32 bytes long, as BIP39 specifies.
func PhraseFromEntropy(entropy []byte) (Phrase, error) {
	switch len(entropy) {
	case 16, 20, 24, 28, 32:
	default:
		return Phrase{}, fmt.Errorf("seed: entropy of %d bytes cannot make a phrase; use 16, 20, 24, 28 or 32 bytes", len(entropy))
	}
	// The bit string is the entropy followed by the first len/4 bits of its
	// SHA-256; each 11 bits of it select a word.
	sum := sha256.Sum256(entropy)
	bits := make([]byte, len(entropy)+1)
	defer clear(bits)
	copy(bits, entropy)
	bits[len(entropy)] = sum[0]
	n := len(entropy) * 3 / 4 // words: (8·len + len/4) / 11
	words := make([]uint16, n)
	for i := range words {
		words[i] = readBits(bits, 11*i, 11)
	}
	return Phrase{words: words}, nil
}

// readBits returns n ≤ 16 bits of b starting at bit offset off, most
// significant bit first.
func readBits(b []byte, off, n int) uint16 {
	var v uint16
	for i := off; i < off+n; i++ {
		v = v<<1 | uint16(b[i/8]>>(7-i%8)&1)
	}
	return v
}

// ParsePhrase reads a phrase as a person types or pastes it: see the
// package documentation for what it forgives. Every error it returns
// matches ErrInvalidPhrase; an unknown word is a *WordError, and the
// sentinels ErrWordCount, ErrChecksum and ErrNumbering tell the other
// problems apart.
func ParsePhrase(s string) (Phrase, error) {
	if len(s) > maxPhraseBytes {
		return Phrase{}, fmt.Errorf("%w: the text given is %d bytes long, too long for a seed phrase", ErrInvalidPhrase, len(s))
	}
	tokens, err := splitWords(s)
	if err != nil {
		return Phrase{}, err
	}
	words := make([]uint16, len(tokens))
	for i, tok := range tokens {
		idx, ok := lookupWord(tok)
		if !ok {
			return Phrase{}, &WordError{Position: i + 1, Word: tok, Suggestions: suggest(tok)}
		}
		words[i] = idx
	}
	if !validCount(len(words)) {
		return Phrase{}, fmt.Errorf("%w: %d given; a seed phrase has 12, 15, 18, 21 or 24 words", ErrWordCount, len(words))
	}
	p := Phrase{words: words}
	entropy, ok := p.entropy()
	clear(entropy)
	if !ok {
		return Phrase{}, ErrChecksum
	}
	return p, nil
}

// isSeparator reports whether r separates words: white space of any kind,
// a comma, or one of the invisible spaces that web pages put between words.
func isSeparator(r rune) bool {
	switch r {
	case ',', '\u200b', '\u2060', '\ufeff': // comma, zero-width space, word joiner, BOM
		return true
	}
	return unicode.IsSpace(r)
}

// dropFormat removes what a word of the English list cannot contain but a
// paste or a keyboard can add: invisible format characters (such as a soft
// hyphen) and, after NFKD, the combining marks of accented letters, so that
// "légal" reads as "legal".
func dropFormat(r rune) rune {
	if unicode.In(r, unicode.Cf, unicode.Mn) {
		return -1
	}
	return r
}

// splitWords normalizes s (NFKD, lower case) and splits it into words,
// taking out a consistent numbering and putting numbered words in order.
func splitWords(s string) ([]string, error) {
	fields := strings.FieldsFunc(strings.ToLower(norm.NFKD.String(s)), isSeparator)
	type entry struct {
		word     string
		num      int
		numbered bool
	}
	entries := make([]entry, 0, len(fields))
	pending, havePending := 0, false
	for _, f := range fields {
		f = strings.Map(dropFormat, f)
		if f == "" {
			continue
		}
		num, word, hasNum := splitNumber(f)
		switch {
		case hasNum && havePending:
			return nil, fmt.Errorf("%w: the numbers %d and %d follow each other with no word between them", ErrNumbering, pending, num)
		case hasNum && word == "":
			pending, havePending = num, true
		case hasNum:
			entries = append(entries, entry{word, num, true})
		case havePending:
			entries = append(entries, entry{word, pending, true})
			havePending = false
		default:
			entries = append(entries, entry{word: word})
		}
	}
	if havePending {
		return nil, fmt.Errorf("%w: the number %d at the end has no word after it", ErrNumbering, pending)
	}
	numbered := 0
	for _, e := range entries {
		if e.numbered {
			numbered++
		}
	}
	words := make([]string, len(entries))
	switch numbered {
	case 0:
		for i, e := range entries {
			words[i] = e.word
		}
	case len(entries):
		for _, e := range entries {
			if e.num < 1 || e.num > len(entries) || words[e.num-1] != "" {
				continue // out of range or twice: some number is then missing
			}
			words[e.num-1] = e.word
		}
		for i, w := range words {
			if w == "" {
				return nil, fmt.Errorf("%w: there are %d numbered words but none is number %d; correct the numbers or leave them out", ErrNumbering, len(entries), i+1)
			}
		}
	default:
		return nil, fmt.Errorf("%w: %d of the %d words have a number; number every word or none", ErrNumbering, numbered, len(entries))
	}
	return words, nil
}

// splitNumber splits a leading list number such as "7", "7.", "7)" or "7:"
// from a token. A run of more than two digits is not a list number.
func splitNumber(tok string) (num int, word string, ok bool) {
	d := 0
	for d < len(tok) && tok[d] >= '0' && tok[d] <= '9' {
		num = num*10 + int(tok[d]-'0')
		d++
	}
	if d == 0 || d > 2 {
		return 0, tok, false
	}
	rest := tok[d:]
	if rest != "" && strings.ContainsRune(".):", rune(rest[0])) {
		rest = rest[1:]
	}
	return num, rest, true
}

// lookupWord returns the index of a word, which may be abbreviated to four
// or more of its first letters: four letters identify every word of the
// English list.
func lookupWord(w string) (uint16, bool) {
	if i, ok := wordIndex[w]; ok {
		return i, true
	}
	if len(w) < 4 {
		return 0, false
	}
	found, n := uint16(0), 0
	for i, word := range wordlists.English {
		if strings.HasPrefix(word, w) {
			found, n = uint16(i), n+1
		}
	}
	return found, n == 1
}

// suggest returns the words of the list closest to w: by edit distance
// (insertions, deletions, substitutions and swaps of neighbours each count
// one), then by the length of the prefix they share with w, then in list
// order.
func suggest(w string) []string {
	r := []rune(w)
	if len(r) == 0 || len(r) > maxSuggestRunes {
		return nil
	}
	type candidate struct{ dist, prefix, index int }
	better := func(a, b candidate) bool {
		if a.dist != b.dist {
			return a.dist < b.dist
		}
		if a.prefix != b.prefix {
			return a.prefix > b.prefix
		}
		return a.index < b.index
	}
	var best []candidate
	for i, word := range wordlists.English {
		bound := len(r) + len(word) // no distance exceeds this
		if len(best) == maxSuggestions {
			// Only a word at most as far as the third best can enter.
			bound = best[len(best)-1].dist
			if abs(len(r)-len(word)) > bound {
				continue
			}
		}
		d := editDistance(r, word, bound)
		if d > bound {
			continue
		}
		c := candidate{d, commonPrefix(r, word), i}
		if len(best) == maxSuggestions && !better(c, best[len(best)-1]) {
			continue
		}
		j := len(best)
		if j < maxSuggestions {
			best = append(best, c)
		} else {
			j--
		}
		for ; j > 0 && better(c, best[j-1]); j-- {
			best[j] = best[j-1]
		}
		best[j] = c
	}
	out := make([]string, len(best))
	for i, c := range best {
		out[i] = wordlists.English[c.index]
	}
	return out
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// editDistance is the optimal string alignment distance between a and the
// ASCII word b. Once the distance is sure to exceed bound, it returns early
// with some value above bound.
func editDistance(a []rune, b string, bound int) int {
	// Three rows of the dynamic programme: two back, one back, current.
	var rows [3][maxSuggestRunes + 1]int
	prev2, prev, cur := &rows[0], &rows[1], &rows[2]
	for i := 0; i <= len(a); i++ {
		prev[i] = i
	}
	for j := 1; j <= len(b); j++ {
		cur[0] = j
		for i := 1; i <= len(a); i++ {
			cost := 1
			if a[i-1] == rune(b[j-1]) {
				cost = 0
			}
			d := min(prev[i]+1, cur[i-1]+1, prev[i-1]+cost)
			if i > 1 && j > 1 && a[i-1] == rune(b[j-2]) && a[i-2] == rune(b[j-1]) {
				d = min(d, prev2[i-2]+1)
			}
			cur[i] = d
		}
		// Every later cell comes from this row or the one before it, plus
		// a non-negative cost: their minimum bounds the result from below.
		low := cur[0]
		for i := 0; i <= len(a); i++ {
			low = min(low, cur[i], prev[i])
		}
		if low > bound {
			return bound + 1
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(a)]
}

// commonPrefix returns how many leading letters a and b share.
func commonPrefix(a []rune, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == rune(b[n]) {
		n++
	}
	return n
}

// entropy returns the entropy the phrase encodes, and whether its checksum
// matches.
func (p Phrase) entropy() ([]byte, bool) {
	n := len(p.words)
	if !validCount(n) {
		return nil, false
	}
	bits := make([]byte, (11*n+7)/8)
	defer clear(bits)
	for i, w := range p.words {
		for k := 0; k < 11; k++ {
			if w>>(10-k)&1 == 1 {
				off := 11*i + k
				bits[off/8] |= 0x80 >> (off % 8)
			}
		}
	}
	entLen := n * 4 / 3
	entropy := make([]byte, entLen)
	copy(entropy, bits)
	csBits := n / 3
	sum := sha256.Sum256(entropy)
	want := sum[0] >> (8 - csBits)
	got := bits[entLen] >> (8 - csBits)
	return entropy, subtle.ConstantTimeByteEq(want, got) == 1
}

// Entropy returns the entropy that the phrase encodes: 16 to 32 bytes, or
// nil for the zero Phrase.
func (p Phrase) Entropy() []byte {
	e, ok := p.entropy()
	if !ok {
		clear(e)
		return nil
	}
	return e
}

// Words returns the number of words in the phrase.
func (p Phrase) Words() int { return len(p.words) }

// String returns the phrase's words joined by single ASCII spaces. This is
// the secret itself: show it only when the user asked for it.
func (p Phrase) String() string {
	var b strings.Builder
	for i, w := range p.words {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(wordlists.English[w])
	}
	return b.String()
}

// GoString returns a redacted form, so that %#v never prints the words.
func (p Phrase) GoString() string {
	return fmt.Sprintf("seed.Phrase{%d words, redacted}", len(p.words))
}

// Format implements fmt.Formatter: %s and %v print the words, %q quotes
// them, %#v is redacted, and every other verb (such as %d or %x, which would
// show word indexes or bytes) prints the redacted form.
func (p Phrase) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		io.WriteString(f, p.GoString())
	case verb == 's' || verb == 'v':
		io.WriteString(f, p.String())
	case verb == 'q':
		io.WriteString(f, strconv.Quote(p.String()))
	default:
		io.WriteString(f, p.GoString())
	}
}

// LogValue implements slog.LogValuer so that a phrase is never logged.
func (p Phrase) LogValue() slog.Value { return slog.StringValue("[redacted seed phrase]") }

// Seed returns the phrase's 64-byte BIP39 seed for a passphrase, which may be
// empty: PBKDF2-HMAC-SHA512 with 2048 iterations over NFKD(phrase) with salt
// "mnemonic" + NFKD(passphrase). It returns nil for the zero Phrase, and
// where the process forbids algorithms outside FIPS 140 (GODEBUG
// fips140=only), since BIP39's 64-bit salt is not approved there; the
// derivation functions refuse a nil seed.
func (p Phrase) Seed(passphrase string) []byte {
	if len(p.words) == 0 {
		return nil
	}
	mnemonic := norm.NFKD.String(p.String())
	salt := []byte("mnemonic" + norm.NFKD.String(passphrase))
	defer clear(salt)
	out, err := pbkdf2.Key(sha512.New, mnemonic, salt, pbkdf2Rounds, SeedSize)
	if err != nil {
		return nil
	}
	return out
}
