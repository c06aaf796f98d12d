package archive

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kith-project/kith/seed"
)

// stockAge returns the path of the stock age binary, or skips.
func stockAge(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("age")
	if err != nil {
		t.Skip("the stock age tool (/usr/bin/age, Debian package age) is not installed")
	}
	return path
}

// writeIdentity writes key in age's text form, as `kith keys export` does.
func writeIdentity(t *testing.T, dir, name string, key seed.ArchiveKey) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(key.AgeIdentityString()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runAge(t *testing.T, bin string, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Logf("age %v: %v: %s", args, err, bytes.TrimSpace(errb.Bytes()))
		return nil, err
	}
	return out.Bytes(), nil
}

// TestStockAgeOpensBothLayers: `age -d -i B.key blob | age -d -i A.key`
// gives the part, which holds the history; one key alone opens nothing.
func TestStockAgeOpensBothLayers(t *testing.T) {
	bin := stockAge(t)
	k := newTestKeys(t)
	dir := t.TempDir()
	aKey := writeIdentity(t, dir, "A.key", k.archA)
	bKey := writeIdentity(t, dir, "B.key", k.archB)
	recs := history(3, 40_000)
	for _, c := range []Compression{CompressNone, CompressFast} {
		s, err := Seal(context.Background(), recs, k.to(), &Options{ChunkSize: 50_000, Compression: c})
		if err != nil {
			t.Fatal(err)
		}
		var parts []Part
		for _, b := range s.Blobs {
			inner, err := runAge(t, bin, b.Data, "-d", "-i", bKey)
			if err != nil {
				t.Fatal("stock age does not open the outer layer with B's key")
			}
			plain, err := runAge(t, bin, inner, "-d", "-i", aKey)
			if err != nil {
				t.Fatal("stock age does not open the inner layer with A's key")
			}
			p, err := ParsePart(plain)
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, p)
			// One key alone opens nothing.
			if _, err := runAge(t, bin, b.Data, "-d", "-i", aKey); err == nil {
				t.Fatal("stock age opened the outer layer with the inner key")
			}
			if _, err := runAge(t, bin, inner, "-d", "-i", bKey); err == nil {
				t.Fatal("stock age opened the inner layer with the outer key")
			}
		}
		if c == CompressNone {
			// Stored parts show the history as it is, to anyone with both keys.
			plain, _ := runAge(t, bin, must(runAge(t, bin, s.Blobs[0].Data, "-d", "-i", bKey)), "-d", "-i", aKey)
			if !bytes.Contains(plain, recs[0].Data[:1000]) {
				t.Fatal("the stored part does not hold the conversation's bytes")
			}
		}
		got, err := Assemble(parts)
		if err != nil {
			t.Fatal(err)
		}
		sameRecords(t, got, recs)
	}
}

// TestStockAgeSealsWhatWeOpen: a pipeline of stock age, `age -r A | age -r
// B`, makes layers PeelOuter and the inner layer opener accept.
func TestStockAgeSealsWhatWeOpen(t *testing.T) {
	bin := stockAge(t)
	k := newTestKeys(t)
	part, err := encodePart(NewArchiveID(), 0, 1, must(Pack(history(1, 5000))), CompressFast)
	if err != nil {
		t.Fatal(err)
	}
	inner := must(runAge(t, bin, part, "-r", k.archA.Recipient().String()))
	blob := must(runAge(t, bin, inner, "-r", k.archB.Recipient().String()))
	peeled, err := PeelOuter(blob, k.archB)
	if err != nil {
		t.Fatal(err)
	}
	p, err := OpenInner(peeled, k.archA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Assemble([]Part{p}); err != nil {
		t.Fatal(err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
