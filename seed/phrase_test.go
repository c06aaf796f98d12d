package seed

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tyler-smith/go-bip39"
	"github.com/tyler-smith/go-bip39/wordlists"
)

// bip39Vector is one entry of Trezor's vectors.json: entropy, mnemonic and
// the seed for the passphrase "TREZOR", as hex and text.
type bip39Vector struct {
	entropy, mnemonic, seed string
}

// loadBIP39Vectors reads testdata/bip39_vectors.json, copied from
// https://github.com/trezor/python-mnemonic/blob/master/vectors.json.
func loadBIP39Vectors(t testing.TB) []bip39Vector {
	t.Helper()
	raw, err := os.ReadFile("testdata/bip39_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		English [][]string `json:"english"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.English) != 24 {
		t.Fatalf("vectors.json has %d English vectors, want 24", len(file.English))
	}
	var out []bip39Vector
	for _, v := range file.English {
		if len(v) < 3 {
			t.Fatalf("vector %q has fewer than 3 fields", v)
		}
		out = append(out, bip39Vector{v[0], v[1], v[2]})
	}
	return out
}

func mustParse(t testing.TB, s string) Phrase {
	t.Helper()
	p, err := ParsePhrase(s)
	if err != nil {
		t.Fatalf("ParsePhrase: %v", err)
	}
	return p
}

func TestBIP39TrezorVectors(t *testing.T) {
	for i, v := range loadBIP39Vectors(t) {
		entropy := mustHex(t, v.entropy)
		p, err := PhraseFromEntropy(entropy)
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		if p.String() != v.mnemonic {
			t.Errorf("vector %d: entropy %s gives %q, want %q", i, v.entropy, p, v.mnemonic)
		}
		q, err := ParsePhrase(v.mnemonic)
		if err != nil {
			t.Fatalf("vector %d: ParsePhrase: %v", i, err)
		}
		if !bytes.Equal(q.Entropy(), entropy) {
			t.Errorf("vector %d: phrase gives entropy %x, want %s", i, q.Entropy(), v.entropy)
		}
		if got := hex.EncodeToString(q.Seed("TREZOR")); got != v.seed {
			t.Errorf("vector %d: seed %s, want %s", i, got, v.seed)
		}
		if q.Words() != len(strings.Fields(v.mnemonic)) {
			t.Errorf("vector %d: Words() = %d", i, q.Words())
		}
	}
}

// TestAgreesWithGoBIP39 checks entropy → phrase against go-bip39, on inputs
// the vectors do not cover. (Its seed function is not compared: it does not
// normalize, which is why this package does not use it.)
func TestAgreesWithGoBIP39(t *testing.T) {
	for _, n := range []int{16, 20, 24, 28, 32} {
		for i := 0; i < 20; i++ {
			entropy := bytes.Repeat([]byte{byte(i*37 + n)}, n)
			entropy[0] ^= byte(i)
			want, err := bip39.NewMnemonic(entropy)
			if err != nil {
				t.Fatal(err)
			}
			p, err := PhraseFromEntropy(entropy)
			if err != nil {
				t.Fatal(err)
			}
			if p.String() != want {
				t.Errorf("entropy %x: %q, go-bip39 says %q", entropy, p, want)
			}
		}
	}
}

func TestPhraseFromEntropyRefusesBadLengths(t *testing.T) {
	for _, n := range []int{0, 15, 17, 33, 64} {
		if _, err := PhraseFromEntropy(make([]byte, n)); err == nil {
			t.Errorf("%d bytes of entropy were accepted", n)
		}
	}
}

func TestGenerate(t *testing.T) {
	for _, n := range []int{0, 12, 15, 18, 21, 24} {
		p, err := Generate(n)
		if err != nil {
			t.Fatalf("Generate(%d): %v", n, err)
		}
		want := n
		if n == 0 {
			want = DefaultWords
		}
		if p.Words() != want {
			t.Errorf("Generate(%d) made %d words", n, p.Words())
		}
		q, err := ParsePhrase(p.String())
		if err != nil || q.String() != p.String() {
			t.Errorf("Generate(%d) made a phrase that does not parse back: %v", n, err)
		}
	}
	a, _ := Generate(24)
	b, _ := Generate(24)
	if a.String() == b.String() {
		t.Error("two generated phrases are the same")
	}
	for _, n := range []int{1, 11, 13, 25, -12} {
		if _, err := Generate(n); !errors.Is(err, ErrWordCount) {
			t.Errorf("Generate(%d): error %v, want ErrWordCount", n, err)
		}
	}
}

const (
	vector24 = "legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth title"
	vector12 = "legal winner thank year wave sausage worth useful legal winner thank yellow"
)

// numbered writes words as a numbered list, in the order given by order
// (0-based word indexes), with sep between entries.
func numbered(words []string, order []int, format, sep string) string {
	var parts []string
	for _, i := range order {
		parts = append(parts, fmt.Sprintf(format, i+1, words[i]))
	}
	return strings.Join(parts, sep)
}

func TestSameKeysFromAnyTyping(t *testing.T) {
	want := mustParse(t, vector24)
	wantUser, err := DeriveUser(want.Seed(""))
	if err != nil {
		t.Fatal(err)
	}
	words := strings.Fields(vector24)
	inOrder := make([]int, len(words))
	for i := range inOrder {
		inOrder[i] = i
	}
	// A two-column layout read row by row: 1, 13, 2, 14, …
	twoColumns := []int{}
	for i := 0; i < 12; i++ {
		twoColumns = append(twoColumns, i, i+12)
	}
	abbreviated := []string{}
	for _, w := range words {
		abbreviated = append(abbreviated, w[:min(len(w), 4)])
	}
	typings := map[string]string{
		"upper case":           strings.ToUpper(vector24),
		"mixed case":           "Legal WINNER thank Year" + vector24[len("legal winner thank year"):],
		"double spaces":        strings.ReplaceAll(vector24, " ", "  "),
		"tabs":                 strings.ReplaceAll(vector24, " ", "\t"),
		"line breaks":          strings.ReplaceAll(vector24, " ", "\n"),
		"CRLF":                 strings.ReplaceAll(vector24, " ", "\r\n"),
		"leading and trailing": "  \t\n" + vector24 + " \n\n",
		"no-break spaces":      strings.ReplaceAll(vector24, " ", "\u00a0"),
		"ideographic spaces":   strings.ReplaceAll(vector24, " ", "\u3000"),
		"zero-width spaces":    strings.ReplaceAll(vector24, " ", "\u200b"),
		"commas":               strings.ReplaceAll(vector24, " ", ", "),
		"full-width letters":   "ｌｅｇａｌ" + vector24[len("legal"):],
		"soft hyphen":          "le\u00adgal" + vector24[len("legal"):],
		"accents":              "légal wínner" + vector24[len("legal winner"):],
		"byte order mark":      "\ufeff" + vector24,
		"numbered with dots":   numbered(words, inOrder, "%d. %s", " "),
		"numbered, parens":     numbered(words, inOrder, "%d) %s", "\n"),
		"numbered, attached":   numbered(words, inOrder, "%d.%s", " "),
		"numbered two columns": numbered(words, twoColumns, "%d. %s", "\t"),
		"four-letter prefixes": strings.Join(abbreviated, " "),
	}
	for name, typed := range typings {
		p, err := ParsePhrase(typed)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if p.String() != vector24 {
			t.Errorf("%s: read as %q", name, p)
		}
		user, err := DeriveUser(p.Seed(""))
		if err != nil {
			t.Fatal(err)
		}
		if !user.Public().Equal(wantUser.Public()) {
			t.Errorf("%s: user ID %s, want %s", name, user.Public(), wantUser.Public())
		}
	}
}

func TestPassphraseNormalization(t *testing.T) {
	p := mustParse(t, vector12)
	composed := p.Seed("caf\u00e9 \u00c5ngstr\u00f6m")      // é, Å and ö as single code points
	decomposed := p.Seed("cafe\u0301 A\u030angstro\u0308m") // e, A and o with combining marks
	compatibility := p.Seed("caf\u00e9 \u212bngstr\u00f6m") // Å as the ANGSTROM SIGN
	if !bytes.Equal(composed, decomposed) || !bytes.Equal(composed, compatibility) {
		t.Error("the same passphrase in NFC, NFD and with compatibility characters gives different seeds")
	}
	// BIP39 says: salt = "mnemonic" + NFKD(passphrase). Check against the
	// formula applied by hand to the NFKD form.
	want, err := pbkdf2.Key(sha512.New, vector12, []byte("mnemoniccafe\u0301 A\u030angstro\u0308m"), 2048, 64)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(composed, want) {
		t.Errorf("seed %x, want PBKDF2 over the NFKD passphrase %x", composed, want)
	}
	// Full-width letters are compatibility characters too.
	if !bytes.Equal(p.Seed("ｐａｓｓ"), p.Seed("pass")) {
		t.Error("full-width passphrase letters give a different seed")
	}
}

func TestPassphraseChangesKeys(t *testing.T) {
	p := mustParse(t, vector12)
	seen := map[string]string{}
	for _, pass := range []string{"", "a", "A", "a ", "TREZOR"} {
		u, err := DeriveUser(p.Seed(pass))
		if err != nil {
			t.Fatal(err)
		}
		if other, ok := seen[u.Public().ID()]; ok {
			t.Errorf("passphrases %q and %q give the same user ID", other, pass)
		}
		seen[u.Public().ID()] = pass
	}
}

func TestWrongWord(t *testing.T) {
	cases := []struct {
		typed    string
		position int
		word     string
		first    string // the closest suggestion
	}{
		{strings.Replace(vector12, "worth", "wroth", 1), 7, "wroth", "worth"},       // swapped letters
		{strings.Replace(vector12, "sausage", "sausge", 1), 6, "sausge", "sausage"}, // a letter left out
		{strings.Replace(vector12, "legal", "LEGAK", 1), 1, "legak", "legal"},       // upper case, a wrong letter
		{numbered(strings.Fields(strings.Replace(vector12, "thank", "thamk", 1)), []int{2, 1, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11}, "%d) %s", "\n"), 3, "thamk", "thank"},
		{strings.Replace(vector12, "yellow", "abandn", 1), 12, "abandn", "abandon"},
	}
	for _, c := range cases {
		_, err := ParsePhrase(c.typed)
		var we *WordError
		if !errors.As(err, &we) {
			t.Errorf("%q: error %v, want a *WordError", c.typed, err)
			continue
		}
		if we.Position != c.position || we.Word != c.word {
			t.Errorf("%q: word %d %q, want word %d %q", c.typed, we.Position, we.Word, c.position, c.word)
		}
		if len(we.Suggestions) == 0 || len(we.Suggestions) > 3 || we.Suggestions[0] != c.first {
			t.Errorf("%q: suggestions %q, want up to 3 starting with %q", c.typed, we.Suggestions, c.first)
		}
		msg := err.Error()
		for _, part := range []string{fmt.Sprintf("word %d", c.position), fmt.Sprintf("%q", c.word), fmt.Sprintf("%q", c.first), "did you mean"} {
			if !strings.Contains(msg, part) {
				t.Errorf("message %q does not contain %s", msg, part)
			}
		}
		if !errors.Is(err, ErrInvalidPhrase) {
			t.Errorf("%v does not match ErrInvalidPhrase", err)
		}
	}
}

// refDistance is a plain full-matrix optimal string alignment distance, to
// check the suggestions against.
func refDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

func TestSuggestionsAreTheClosest(t *testing.T) {
	for _, w := range []string{"abandn", "wroth", "xyz", "zzzzzzzz", "hello", "bitcoin", "q", "legall", "aple"} {
		got := suggest(w)
		if len(got) != 3 {
			t.Errorf("%q: %d suggestions, want 3", w, len(got))
			continue
		}
		for i := 1; i < len(got); i++ {
			if refDistance(w, got[i-1]) > refDistance(w, got[i]) {
				t.Errorf("%q: suggestions %q are not in order of distance", w, got)
			}
		}
		worst := refDistance(w, got[len(got)-1])
		for _, word := range wordlists.English {
			if refDistance(w, word) < worst && !slices.Contains(got, word) {
				t.Errorf("%q: %q (distance %d) is closer than suggestion %q (%d)", w, word, refDistance(w, word), got[len(got)-1], worst)
			}
		}
	}
	// Ties are broken by the longer shared prefix: "aple" is one edit from
	// both "able" and "apple", and shares two letters with "apple".
	got := suggest("aple")
	if slices.Index(got, "apple") > slices.Index(got, "able") {
		t.Errorf("suggestions for \"aple\" %q: \"apple\" shares the longer prefix and should come first", got)
	}
}

func TestChecksum(t *testing.T) {
	bad := []string{
		strings.Repeat("abandon ", 12),
		strings.Replace(vector12, "yellow", "year", 1),
		// Two words swapped.
		strings.Replace(strings.Replace(vector12, "thank", "X", 1), "winner", "thank", 1),
	}
	bad[2] = strings.Replace(bad[2], "X", "winner", 1)
	for _, b := range bad {
		_, err := ParsePhrase(b)
		if !errors.Is(err, ErrChecksum) || !errors.Is(err, ErrInvalidPhrase) {
			t.Errorf("%q: error %v, want ErrChecksum", b, err)
		}
	}
	if !strings.Contains(ErrChecksum.Error(), "mistyped") || !strings.Contains(ErrChecksum.Error(), "swapped") {
		t.Errorf("checksum message %q should say a word is mistyped or swapped", ErrChecksum)
	}
}

func TestWordCount(t *testing.T) {
	for n := 0; n <= 30; n++ {
		_, err := ParsePhrase(strings.Repeat("zoo ", n))
		if validCount(n) {
			if errors.Is(err, ErrWordCount) {
				t.Errorf("%d words: %v", n, err)
			}
			continue
		}
		if !errors.Is(err, ErrWordCount) || !errors.Is(err, ErrInvalidPhrase) {
			t.Errorf("%d words: error %v, want ErrWordCount", n, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("%d given", n)) || !strings.Contains(msg, "12, 15, 18, 21 or 24") {
			t.Errorf("%d words: message %q should say how many were given and which counts work", n, msg)
		}
	}
	// Every accepted count parses when the checksum is right.
	for _, v := range loadBIP39Vectors(t) {
		if _, err := ParsePhrase(v.mnemonic); err != nil {
			t.Errorf("%d words: %v", len(strings.Fields(v.mnemonic)), err)
		}
	}
}

func TestNumbering(t *testing.T) {
	words := strings.Fields(vector12)
	bad := map[string]string{
		"a number missing": "1. " + words[0] + " 3. " + strings.Join(words[1:], " "),
		"only some":        "1. " + strings.Join(words, " "),
		"twice":            numbered(words, []int{0, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, "%d. %s", " "),
		"two numbers":      "1. 2. " + vector12,
		"trailing number":  vector12 + " 13.",
	}
	for name, typed := range bad {
		_, err := ParsePhrase(typed)
		if !errors.Is(err, ErrNumbering) || !errors.Is(err, ErrInvalidPhrase) {
			t.Errorf("%s: error %v, want ErrNumbering", name, err)
		}
	}
	// A number with three digits is not a list number but a wrong word.
	_, err := ParsePhrase("100 " + vector12)
	var we *WordError
	if !errors.As(err, &we) || we.Position != 1 {
		t.Errorf("\"100\" before the phrase: error %v, want a word error at position 1", err)
	}
}

func TestTooLong(t *testing.T) {
	_, err := ParsePhrase(strings.Repeat(" ", maxPhraseBytes) + vector12)
	if !errors.Is(err, ErrInvalidPhrase) {
		t.Errorf("error %v, want ErrInvalidPhrase", err)
	}
}

func TestZeroPhrase(t *testing.T) {
	var p Phrase
	if p.Words() != 0 || p.String() != "" || p.Seed("") != nil || p.Entropy() != nil {
		t.Error("the zero Phrase should have no words, no seed and no entropy")
	}
	if _, err := DeriveUser(p.Seed("")); err == nil {
		t.Error("DeriveUser accepted the zero phrase's nil seed")
	}
}

func TestPhraseIsNotLogged(t *testing.T) {
	p := mustParse(t, vector12)
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		slog.New(h).Info("restoring", "phrase", p)
	}
	fmt.Fprintf(&buf, "%#v %d %x %X %b %+d", p, p, p, p, p, p)
	for _, w := range []string{"legal", "winner", "yellow"} {
		if strings.Contains(buf.String(), w) {
			t.Fatalf("the phrase leaked into logs or fmt: %s", buf.String())
		}
	}
	// Word indexes are the secret too: legal is word 1019.
	if strings.Contains(buf.String(), "1019") || strings.Contains(buf.String(), "3fb") {
		t.Fatalf("the phrase's word indexes leaked: %s", buf.String())
	}
	// %s, %v and %q print the words, as asked.
	if got := fmt.Sprintf("%s|%v|%q", p, p, p); got != vector12+"|"+vector12+"|"+strconv.Quote(vector12) {
		t.Errorf("%%s|%%v|%%q printed %q", got)
	}
}
