package keystore

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fastParams keep most tests quick; the tests that use Save itself cover the
// real parameters.
var fastParams = params{Time: 1, MemoryKiB: 64, Threads: 1}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// testSecrets returns fresh random secrets like a device's, and the names of
// the private ones.
func testSecrets(t testing.TB) Secrets {
	return Secrets{Entries: map[string][]byte{
		"device-ed25519": randomBytes(t, 32),
		"archive-x25519": randomBytes(t, 32),
		"window":         randomBytes(t, 32),
	}}
}

func saveFast(t testing.TB, dir string, s Secrets, lock []byte) {
	t.Helper()
	if err := save(dir, s, lock, fastParams, rand.Reader); err != nil {
		t.Fatal(err)
	}
}

func assertEqualSecrets(t *testing.T, got, want Secrets) {
	t.Helper()
	if len(got.Entries) != len(want.Entries) {
		t.Fatalf("got %d entries, want %d", len(got.Entries), len(want.Entries))
	}
	for name, w := range want.Entries {
		g, ok := got.Entries[name]
		if !ok {
			t.Errorf("entry %q missing", name)
			continue
		}
		if !bytes.Equal(g, w) {
			t.Errorf("entry %q differs", name)
		}
	}
}

func TestRoundTripUnsealed(t *testing.T) {
	dir := t.TempDir()
	want := testSecrets(t)
	want.Entries["device-ed25519.pub"] = randomBytes(t, 32)
	want.Entries["empty"] = []byte{}
	if err := Save(dir, want, nil); err != nil {
		t.Fatal(err)
	}
	if !Exists(dir) {
		t.Fatal("Exists is false after Save")
	}
	sealed, err := IsSealed(dir)
	if err != nil || sealed {
		t.Fatalf("IsSealed = %v, %v; want false", sealed, err)
	}
	for _, lock := range [][]byte{nil, {}, []byte("ignored when unsealed")} {
		got, err := Load(dir, lock)
		if err != nil {
			t.Fatalf("Load with lock %q: %v", lock, err)
		}
		assertEqualSecrets(t, got, want)
	}
}

func TestRoundTripSealedDefaultParams(t *testing.T) {
	dir := t.TempDir()
	want := testSecrets(t)
	lock := []byte("correct horse battery staple")
	if err := Save(dir, want, lock); err != nil {
		t.Fatal(err)
	}
	sealed, err := IsSealed(dir)
	if err != nil || !sealed {
		t.Fatalf("IsSealed = %v, %v; want true", sealed, err)
	}
	f, err := readFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if f.hdr.Time != 3 || f.hdr.MemoryKiB != 64*1024 || f.hdr.Threads != 4 || len(f.hdr.Salt) != 16 {
		t.Errorf("header %+v does not carry argon2id(t=3, 64 MiB, 4 threads) with a 16-byte salt", f.hdr)
	}
	got, err := Load(dir, lock)
	if err != nil {
		t.Fatal(err)
	}
	assertEqualSecrets(t, got, want)
}

func TestSaveTwiceUsesFreshSaltAndNonce(t *testing.T) {
	dir := t.TempDir()
	s := testSecrets(t)
	lock := []byte("pw")
	saveFast(t, dir, s, lock)
	first, err := readFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	saveFast(t, dir, s, lock)
	second, err := readFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first.hdr.Salt, second.hdr.Salt) || bytes.Equal(first.hdr.Nonce, second.hdr.Nonce) {
		t.Error("two saves reused a salt or a nonce")
	}
}

// forms returns the ways a secret could show up in a text file.
func forms(secret []byte) map[string][]byte {
	return map[string][]byte{
		"raw":              secret,
		"hex":              []byte(hex.EncodeToString(secret)),
		"HEX":              []byte(strings.ToUpper(hex.EncodeToString(secret))),
		"base64":           []byte(base64.StdEncoding.EncodeToString(secret)),
		"base64 unpadded":  []byte(base64.RawStdEncoding.EncodeToString(secret)),
		"base64url":        []byte(base64.URLEncoding.EncodeToString(secret)),
		"base64url unpad.": []byte(base64.RawURLEncoding.EncodeToString(secret)),
		// A secret's first 16 bytes, in case a form wraps or splits it.
		"raw prefix":    secret[:16],
		"hex prefix":    []byte(hex.EncodeToString(secret[:16])),
		"base64 prefix": []byte(base64.RawStdEncoding.EncodeToString(secret[:15])),
	}
}

func TestSealedHomeHoldsNoSecret(t *testing.T) {
	for _, name := range []string{"Save", "ChangeLock"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := testSecrets(t)
			lock := []byte("hunter2")
			if name == "Save" {
				saveFast(t, dir, s, lock)
			} else {
				// Sealing an unsealed file must not leave the clear copy behind.
				saveFast(t, dir, s, nil)
				if err := changeLock(dir, nil, lock, fastParams); err != nil {
					t.Fatal(err)
				}
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || entries[0].Name() != FileName {
				t.Errorf("home holds %v, want only %q", entries, FileName)
			}
			for _, e := range entries {
				data, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				for entry, secret := range s.Entries {
					for form, b := range forms(secret) {
						if bytes.Contains(data, b) {
							t.Errorf("%s holds %s in %s form", e.Name(), entry, form)
						}
					}
				}
			}
		})
	}
}

func TestUnsealedFileHoldsSecrets(t *testing.T) {
	// The control for TestSealedHomeHoldsNoSecret: the search finds secrets
	// where they are.
	dir := t.TempDir()
	s := testSecrets(t)
	saveFast(t, dir, s, nil)
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := decode(data)
	if err != nil {
		t.Fatal(err)
	}
	for entry, secret := range s.Entries {
		if !bytes.Contains(decoded.body, []byte(base64.StdEncoding.EncodeToString(secret))) {
			t.Errorf("the unsealed payload does not hold %s", entry)
		}
	}
}

func TestLoadSealedWithoutPassphrase(t *testing.T) {
	dir := t.TempDir()
	saveFast(t, dir, testSecrets(t), []byte("pw"))
	for _, lock := range [][]byte{nil, {}} {
		_, err := Load(dir, lock)
		if !errors.Is(err, ErrLocked) {
			t.Errorf("Load(%q): got %v, want ErrLocked", lock, err)
		}
	}
	if _, err := Load(dir, nil); !strings.Contains(err.Error(), "the keys are locked") || strings.Contains(err.Error(), "KITH_PASSPHRASE") {
		t.Errorf("message %q does not say the keys are locked, or carries a command-line hint", err)
	}
}

func TestWrongPassphrase(t *testing.T) {
	dir := t.TempDir()
	saveFast(t, dir, testSecrets(t), []byte("right"))
	for _, lock := range []string{"wrong", "Right", "right ", "righ"} {
		_, err := Load(dir, []byte(lock))
		if !errors.Is(err, ErrWrongPassphrase) {
			t.Errorf("Load(%q): got %v, want ErrWrongPassphrase", lock, err)
		}
	}
}

func TestEveryBitFlipIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := testSecrets(t)
	lock := []byte("pw")
	saveFast(t, dir, s, lock)
	path := filepath.Join(dir, FileName)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bodyStart := bytes.IndexByte(orig, '\n') + 1
	bodyStart += bytes.IndexByte(orig[bodyStart:], '\n') + 1
	for i := range orig {
		for bit := 0; bit < 8; bit++ {
			data := bytes.Clone(orig)
			data[i] ^= 1 << bit
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir, lock)
			switch {
			case err == nil:
				t.Fatalf("flipping bit %d of byte %d (%q) went unnoticed", bit, i, orig[i])
			case !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongPassphrase) && !errors.Is(err, ErrUnsupportedVersion):
				t.Fatalf("flipping bit %d of byte %d: unexpected error %v", bit, i, err)
			case i >= bodyStart && orig[i] != '\n' && !errors.Is(err, ErrCorrupt):
				t.Fatalf("flipping bit %d of body byte %d: got %v, want ErrCorrupt", bit, i, err)
			}
		}
	}
}

func TestTamperedCiphertextMessage(t *testing.T) {
	dir := t.TempDir()
	lock := []byte("pw")
	saveFast(t, dir, testSecrets(t), lock)
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := decode(data)
	if err != nil {
		t.Fatal(err)
	}
	f.body[0] ^= 1
	if err := os.WriteFile(path, f.encode(), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(dir, lock)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
	for _, want := range []string{path, "does not authenticate", "damaged or was modified"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not contain %q", err, want)
		}
	}
}

func TestTruncatedFile(t *testing.T) {
	for _, lock := range [][]byte{nil, []byte("pw")} {
		dir := t.TempDir()
		saveFast(t, dir, testSecrets(t), lock)
		path := filepath.Join(dir, FileName)
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < len(orig); n++ {
			if err := os.WriteFile(path, orig[:n], 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir, lock)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("sealed=%v, %d of %d bytes: got %v, want ErrCorrupt", lock != nil, n, len(orig), err)
			}
		}
		if err := os.WriteFile(path, orig[:len(orig)/2], 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir, lock); !strings.Contains(err.Error(), "truncated") {
			t.Errorf("message %q does not suggest truncation", err)
		}
	}
}

func TestNewerVersionRefused(t *testing.T) {
	dir := t.TempDir()
	saveFast(t, dir, testSecrets(t), nil)
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"2", "17"} {
		newer := bytes.Replace(data, []byte("kith-keystore v1\n"), []byte("kith-keystore v"+v+"\n"), 1)
		if err := os.WriteFile(path, newer, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir, nil)
		if !errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("v%s: got %v, want ErrUnsupportedVersion", v, err)
		}
		if !strings.Contains(err.Error(), "version "+v) || !strings.Contains(err.Error(), "written by a newer kith") {
			t.Errorf("message %q does not name version %s and say a newer kith wrote it", err, v)
		}
		if _, err := IsSealed(dir); !errors.Is(err, ErrUnsupportedVersion) {
			t.Errorf("IsSealed: got %v, want ErrUnsupportedVersion", err)
		}
	}
}

func TestNotAKeysFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	for _, data := range []string{"hello\n", "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n", "{}"} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir, nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%q: got %v, want ErrCorrupt", data, err)
		}
	}
}

func TestNotFound(t *testing.T) {
	dir := t.TempDir()
	if Exists(dir) {
		t.Error("Exists in an empty folder")
	}
	if _, err := Load(dir, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load: got %v, want ErrNotFound", err)
	}
	if _, err := IsSealed(dir); !errors.Is(err, ErrNotFound) {
		t.Errorf("IsSealed: got %v, want ErrNotFound", err)
	}
	if err := ChangeLock(dir, nil, []byte("x")); !errors.Is(err, ErrNotFound) {
		t.Errorf("ChangeLock: got %v, want ErrNotFound", err)
	}
}

func TestFileMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	// A loose file already there is replaced by a 0600 one.
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, lock := range [][]byte{nil, []byte("pw")} {
		saveFast(t, dir, testSecrets(t), lock)
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("sealed=%v: mode %v, want 0600", lock != nil, info.Mode().Perm())
		}
	}

	// Load tightens a file someone loosened.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, []byte("pw")); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("after Load: mode %v, want 0600", info.Mode().Perm())
	}
}

func TestChangeLock(t *testing.T) {
	dir := t.TempDir()
	want := testSecrets(t)
	saveFast(t, dir, want, nil)

	steps := []struct{ old, new string }{
		{"", "first"},      // seal
		{"first", "other"}, // change
		{"other", ""},      // unseal
	}
	for _, step := range steps {
		if err := changeLock(dir, []byte(step.old), []byte(step.new), fastParams); err != nil {
			t.Fatalf("%q → %q: %v", step.old, step.new, err)
		}
		sealed, err := IsSealed(dir)
		if err != nil || sealed != (step.new != "") {
			t.Fatalf("%q → %q: IsSealed = %v, %v", step.old, step.new, sealed, err)
		}
		if step.new != "" && step.old != "" {
			if _, err := Load(dir, []byte(step.old)); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("old passphrase %q still opens the file: %v", step.old, err)
			}
		}
		got, err := Load(dir, []byte(step.new))
		if err != nil {
			t.Fatal(err)
		}
		assertEqualSecrets(t, got, want)
	}
}

func TestChangeLockWrongOldLeavesFile(t *testing.T) {
	dir := t.TempDir()
	saveFast(t, dir, testSecrets(t), []byte("right"))
	path := filepath.Join(dir, FileName)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := changeLock(dir, []byte("wrong"), []byte("new"), fastParams); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("got %v, want ErrWrongPassphrase", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("a failed ChangeLock changed the file")
	}
}

func TestChangeLockDefaultParams(t *testing.T) {
	dir := t.TempDir()
	want := testSecrets(t)
	saveFast(t, dir, want, nil)
	if err := ChangeLock(dir, nil, []byte("pw")); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	assertEqualSecrets(t, got, want)
}

func TestSaveRefusesBadEntries(t *testing.T) {
	dir := t.TempDir()
	many := map[string][]byte{}
	for i := range maxEntries + 1 {
		many[strings.Repeat("a", 1+i%maxName)+string(rune('a'+i/maxName))] = nil
	}
	for name, entries := range map[string]map[string][]byte{
		"empty name":    {"": {1}},
		"upper case":    {"Device": {1}},
		"space":         {"a b": {1}},
		"long name":     {strings.Repeat("a", maxName+1): {1}},
		"large value":   {"a": make([]byte, maxValue+1)},
		"too many keys": many,
	} {
		if err := save(dir, Secrets{Entries: entries}, nil, fastParams, rand.Reader); err == nil {
			t.Errorf("%s: Save succeeded", name)
		}
	}
	if Exists(dir) {
		t.Error("a refused Save left a file")
	}
}

func TestSaveNoEntries(t *testing.T) {
	dir := t.TempDir()
	saveFast(t, dir, Secrets{}, nil)
	got, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Entries) != 0 {
		t.Errorf("got %d entries, want none", len(got.Entries))
	}
}

func TestSaveIntoMissingFolder(t *testing.T) {
	if err := Save(filepath.Join(t.TempDir(), "missing"), testSecrets(t), nil); err == nil {
		t.Fatal("Save into a missing folder succeeded")
	}
}

func TestZero(t *testing.T) {
	s := testSecrets(t)
	s.Zero()
	for name, v := range s.Entries {
		if !bytes.Equal(v, make([]byte, len(v))) {
			t.Errorf("%s not zeroed", name)
		}
	}
}
