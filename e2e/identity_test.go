package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/kith-project/kith/internal/home"
	"github.com/kith-project/kith/internal/keystore"
	"github.com/kith-project/kith/internal/kithtest"
	"github.com/kith-project/kith/seed"
	bolt "go.etcd.io/bbolt"
)

type identity struct {
	UserID           string `json:"user_id"`
	DeviceID         string `json:"device_id"`
	DeviceIndex      uint32 `json:"device_index"`
	Name             string `json:"name"`
	Mnemonic         string `json:"mnemonic"`
	ArchiveRecipient string `json:"archive_recipient"`
}

func initDevice(t *testing.T, d *kithtest.Device, args ...string) identity {
	t.Helper()
	var id identity
	d.JSON(&id, "", append([]string{"init", "--name", "first"}, args...)...)
	if len(strings.Fields(id.Mnemonic)) == 0 {
		t.Fatalf("init printed no mnemonic: %+v", id)
	}
	return id
}

func restoreDevice(t *testing.T, d *kithtest.Device, phrase string, index int) identity {
	t.Helper()
	var id identity
	d.JSON(&id, phrase, "restore", "--device", strconv.Itoa(index), "--name", "restored")
	return id
}

func TestRestoreGivesTheSameIdentity(t *testing.T) {
	a := kithtest.NewDevice(t)
	created := initDevice(t, a)
	if n := len(strings.Fields(created.Mnemonic)); n != 24 {
		t.Fatalf("init made %d words, want 24 by default", n)
	}
	var aid identity
	a.JSON(&aid, "", "id")
	if aid.UserID != created.UserID || aid.DeviceID != created.DeviceID || aid.DeviceIndex != 0 {
		t.Fatalf("id after init = %+v, init said %+v", aid, created)
	}

	b := kithtest.NewDevice(t)
	same := restoreDevice(t, b, created.Mnemonic+"\n", 0)
	if same.UserID != created.UserID || same.DeviceID != created.DeviceID {
		t.Fatalf("restore of device 0 gave user %s device %s, init gave user %s device %s",
			same.UserID, same.DeviceID, created.UserID, created.DeviceID)
	}
	var bid identity
	b.JSON(&bid, "", "id")
	if bid.ArchiveRecipient != aid.ArchiveRecipient || !strings.HasPrefix(bid.ArchiveRecipient, "age1") {
		t.Fatalf("archive recipients differ or are not age recipients: %q vs %q", bid.ArchiveRecipient, aid.ArchiveRecipient)
	}

	c := kithtest.NewDevice(t)
	other := restoreDevice(t, c, created.Mnemonic, 1)
	if other.UserID != created.UserID {
		t.Fatalf("device 1 has user %s, want %s", other.UserID, created.UserID)
	}
	if other.DeviceID == created.DeviceID {
		t.Fatalf("device 1 has the same device ID as device 0: %s", other.DeviceID)
	}
	if other.DeviceIndex != 1 {
		t.Fatalf("device_index = %d, want 1", other.DeviceIndex)
	}
}

func TestRestoreForgivesTyping(t *testing.T) {
	a := kithtest.NewDevice(t)
	created := initDevice(t, a, "--words", "12")
	words := strings.Fields(created.Mnemonic)
	if len(words) != 12 {
		t.Fatalf("--words 12 made %d words", len(words))
	}
	// Upper case, tabs, several spaces and line breaks, as a paste might.
	var messy strings.Builder
	messy.WriteString("  \t")
	for i, w := range words {
		if i%2 == 0 {
			w = strings.ToUpper(w)
		}
		messy.WriteString(w)
		switch i % 3 {
		case 0:
			messy.WriteString("   ")
		case 1:
			messy.WriteString("\t")
		case 2:
			messy.WriteString("\r\n")
		}
	}
	b := kithtest.NewDevice(t)
	got := restoreDevice(t, b, messy.String(), 0)
	if got.UserID != created.UserID || got.DeviceID != created.DeviceID {
		t.Fatalf("a messily typed phrase gave %s/%s, want %s/%s", got.UserID, got.DeviceID, created.UserID, created.DeviceID)
	}
}

func TestSeedPassphraseChangesKeysAndIsNormalized(t *testing.T) {
	a := kithtest.NewDevice(t)
	a.Env = []string{"KITH_SEED_PASSPHRASE=caf\u00e9"} // composed é
	created := initDevice(t, a)

	b := kithtest.NewDevice(t)
	b.Env = []string{"KITH_SEED_PASSPHRASE=cafe\u0301"} // e + combining acute
	got := restoreDevice(t, b, created.Mnemonic, 0)
	if got.UserID != created.UserID {
		t.Fatalf("composed and decomposed passphrases gave different users: %s vs %s", got.UserID, created.UserID)
	}

	c := kithtest.NewDevice(t)
	plain := restoreDevice(t, c, created.Mnemonic, 0)
	if plain.UserID == created.UserID {
		t.Fatal("restoring without the BIP39 passphrase gave the same user ID")
	}
}

func TestBadPhrasesAreExplained(t *testing.T) {
	a := kithtest.NewDevice(t)
	created := initDevice(t, a)
	words := strings.Fields(created.Mnemonic)

	t.Run("mistyped word", func(t *testing.T) {
		typo := append([]string(nil), words...)
		typo[6] = typo[6][:len(typo[6])-1] + "q" // no BIP39 word ends in q
		res := kithtest.NewDevice(t).Run(strings.Join(typo, " "), "restore", "--device", "0")
		if res.Code != 2 {
			t.Fatalf("want exit 2 for a mistyped word, got %s", res)
		}
		if !strings.Contains(res.Stderr, "7") || !strings.Contains(res.Stderr, typo[6]) || !strings.Contains(res.Stderr, words[6]) {
			t.Fatalf("the error should name word 7 %q and suggest %q: %s", typo[6], words[6], res.Stderr)
		}
		lines := strings.Split(strings.TrimSpace(res.Stderr), "\n")
		if !strings.HasPrefix(lines[0], "kith: ") || strings.HasPrefix(lines[0], "kith: hint: ") {
			t.Fatalf("an error is one line starting with \"kith: \": %q", res.Stderr)
		}
		for _, l := range lines[1:] {
			if !strings.HasPrefix(l, "kith: hint: ") {
				t.Fatalf("after the error come only hint lines: %q", res.Stderr)
			}
		}
	})
	t.Run("swapped words", func(t *testing.T) {
		// Swap the first neighbours whose swap breaks the checksum: about
		// one swap in 16 of a 12-word phrase keeps it valid, and restores
		// another identity, which only the user ID check can catch.
		var sw []string
		for i := 0; i+1 < len(words) && sw == nil; i++ {
			try := append([]string(nil), words...)
			try[i], try[i+1] = try[i+1], try[i]
			if _, err := seed.ParsePhrase(strings.Join(try, " ")); err != nil && try[i] != try[i+1] {
				sw = try
			}
		}
		if sw == nil {
			t.Fatal("no swap of neighbouring words breaks this phrase's checksum")
		}
		res := kithtest.NewDevice(t).Run(strings.Join(sw, " "), "restore", "--device", "0")
		if res.Code != 2 || !strings.Contains(res.Stderr, "checksum") || !strings.Contains(res.Stderr, "swapped") {
			t.Fatalf("want exit 2 and a checksum error that mentions swapped words, got %s", res)
		}
	})
	t.Run("wrong count", func(t *testing.T) {
		res := kithtest.NewDevice(t).Run(strings.Join(words[:13], " "), "restore", "--device", "0")
		if res.Code != 2 || !strings.Contains(res.Stderr, "13") {
			t.Fatalf("want exit 2 naming the 13 words given, got %s", res)
		}
	})
	t.Run("missing device flag", func(t *testing.T) {
		res := kithtest.NewDevice(t).Run(created.Mnemonic, "restore")
		if res.Code != 2 || !strings.Contains(res.Stderr, "--device") {
			t.Fatalf("want exit 2 naming --device, got %s", res)
		}
	})
}

func TestRestoreRefusesToOverwrite(t *testing.T) {
	a := kithtest.NewDevice(t)
	first := initDevice(t, a)
	second := initDevice(t, kithtest.NewDevice(t))

	res := a.Run(second.Mnemonic, "restore", "--device", "0")
	if res.Code != 1 || !strings.Contains(res.Stderr, "--force") {
		t.Fatalf("restore over an identity should fail with a hint about --force: %s", res)
	}
	var still identity
	a.JSON(&still, "", "id")
	if still.UserID != first.UserID {
		t.Fatalf("a refused restore changed the identity to %s", still.UserID)
	}
	var replaced identity
	a.JSON(&replaced, second.Mnemonic, "restore", "--device", "0", "--force")
	a.JSON(&still, "", "id")
	if replaced.UserID != second.UserID || still.UserID != second.UserID {
		t.Fatalf("restore --force gave %s, id says %s, want %s", replaced.UserID, still.UserID, second.UserID)
	}
}

// secretsOf derives the private key bytes device index of phrase has.
func secretsOf(t *testing.T, phrase string, index uint32) [][]byte {
	t.Helper()
	p, err := seed.ParsePhrase(phrase)
	if err != nil {
		t.Fatal(err)
	}
	s := p.Seed("")
	dev, arch, err := seed.DeriveDevice(s, index)
	if err != nil {
		t.Fatal(err)
	}
	win, err := seed.DeriveWindowSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	user, _, err := seed.DeriveEd25519(s, seed.Purpose|seed.Hardened, 0|seed.Hardened)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{dev.Bytes(), arch.Bytes(), win[:], user[:]}
}

// findSecrets reports every file under dir that holds one of the secrets,
// raw or in hex.
func findSecrets(t *testing.T, dir string, secrets [][]byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			forms := [][]byte{s, []byte(hex.EncodeToString(s)), []byte(base64.StdEncoding.EncodeToString(s)[:40]), []byte(base64.RawURLEncoding.EncodeToString(s)[:40])}
			hit := false
			for _, f := range forms {
				hit = hit || bytes.Contains(b, f) || bytes.Contains(bytes.ToLower(b), bytes.ToLower(f))
			}
			if hit {
				found = append(found, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestSealedKeystore(t *testing.T) {
	a := kithtest.NewDevice(t)
	a.Env = []string{"KITH_PASSPHRASE=correct horse"}
	created := initDevice(t, a)
	secrets := secretsOf(t, created.Mnemonic, 0)
	if found := findSecrets(t, a.Home, secrets); len(found) != 0 {
		t.Fatalf("with a lock passphrase set, private key bytes are readable in %v", found)
	}
	// The user key is never on disk, sealed or not.
	b := kithtest.NewDevice(t)
	restoreDevice(t, b, created.Mnemonic, 0)
	if found := findSecrets(t, b.Home, secrets[3:]); len(found) != 0 {
		t.Fatalf("the user key was written to %v", found)
	}
	// Without a lock the keystore holds the same secrets the test derived,
	// so the search above looked for the right bytes.
	plain, err := keystore.Load(b.Home, nil)
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, v := range plain.Entries {
		for _, s := range secrets {
			if bytes.Equal(v, s) {
				held++
			}
		}
	}
	if held != 3 {
		t.Fatalf("the unsealed keystore holds %d of the 3 device secrets the test derived", held)
	}
	// Every file in the home is private.
	filepath.WalkDir(a.Home, func(path string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			if fi, _ := de.Info(); fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
			}
		}
		return nil
	})

	wrong := *a
	wrong.Env = []string{"KITH_PASSPHRASE=wrong horse", "KITH_NEW_PASSPHRASE=whatever"}
	res := wrong.Run("", "keys", "lock")
	if res.Code == 0 || !strings.Contains(res.Stderr, "passphrase is wrong") {
		t.Fatalf("a wrong lock passphrase should be a clear error: %s", res)
	}
	none := *a
	none.Env = []string{"KITH_NEW_PASSPHRASE=whatever"}
	if res := none.Run("", "keys", "lock"); res.Code == 0 || !strings.Contains(res.Stderr, "KITH_PASSPHRASE") {
		t.Fatalf("locked keys without a passphrase should say how to give it: %s", res)
	}
}

func TestLockPassphraseChangesNoID(t *testing.T) {
	a := kithtest.NewDevice(t)
	created := initDevice(t, a)
	var before identity
	a.JSON(&before, "", "id")

	set := *a
	set.Env = []string{"KITH_NEW_PASSPHRASE=first lock"}
	var out struct{ Sealed bool }
	set.JSON(&out, "", "keys", "lock")
	if !out.Sealed {
		t.Fatal("keys lock did not seal the keys")
	}
	change := *a
	change.Env = []string{"KITH_PASSPHRASE=first lock", "KITH_NEW_PASSPHRASE=second lock"}
	change.JSON(&out, "", "keys", "lock")
	if found := findSecrets(t, a.Home, secretsOf(t, created.Mnemonic, 0)); len(found) != 0 {
		t.Fatalf("after keys lock, private key bytes are readable in %v", found)
	}
	var after identity
	a.JSON(&after, "", "id")
	if after.UserID != before.UserID || after.DeviceID != before.DeviceID || after.ArchiveRecipient != before.ArchiveRecipient {
		t.Fatalf("changing the lock passphrase changed the identity: %+v -> %+v", before, after)
	}
	// A device restored with a lock passphrase has the same IDs as one without.
	b := kithtest.NewDevice(t)
	b.Env = []string{"KITH_PASSPHRASE=another lock"}
	if got := restoreDevice(t, b, created.Mnemonic, 0); got.DeviceID != before.DeviceID {
		t.Fatalf("the lock passphrase changed the device ID: %s vs %s", got.DeviceID, before.DeviceID)
	}
}

func TestAgeInterop(t *testing.T) {
	ageBin, err := exec.LookPath("age")
	if err != nil {
		t.Skip("the stock age tool is not installed (apt-get install age); skipping the interop test")
	}
	a := kithtest.NewDevice(t)
	created := initDevice(t, a)
	var id identity
	a.JSON(&id, "", "id")
	var exp struct {
		DeviceIndex  *uint32 `json:"device_index"`
		AgeIdentity  string  `json:"age_identity"`
		AgeRecipient string  `json:"age_recipient"`
	}
	kithtest.NewDevice(t).JSON(&exp, created.Mnemonic, "keys", "export", "--device", "0")
	if exp.AgeRecipient != id.ArchiveRecipient || exp.DeviceIndex == nil || *exp.DeviceIndex != 0 {
		t.Fatalf("keys export gave recipient %s (index %v), id says %s", exp.AgeRecipient, exp.DeviceIndex, id.ArchiveRecipient)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "device0.agekey")
	// The text form of keys export is an age key file.
	txt := kithtest.NewDevice(t).Run(created.Mnemonic, "keys", "export", "--device", "0")
	if txt.Code != 0 {
		t.Fatal(txt)
	}
	if err := os.WriteFile(keyFile, []byte(txt.Stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	plain := []byte("history that only the archive key should open\n")

	// Stock age encrypts to archive_recipient; the exported identity opens it, in age and in Go.
	enc := exec.Command(ageBin, "-r", id.ArchiveRecipient)
	enc.Stdin = bytes.NewReader(plain)
	sealed, err := enc.Output()
	if err != nil {
		t.Fatalf("age -r: %v", err)
	}
	dec := exec.Command(ageBin, "-d", "-i", keyFile)
	dec.Stdin = bytes.NewReader(sealed)
	if out, err := dec.Output(); err != nil || !bytes.Equal(out, plain) {
		t.Fatalf("age -d with the exported key: %v, %q", err, out)
	}
	ident, err := age.ParseX25519Identity(exp.AgeIdentity)
	if err != nil {
		t.Fatal(err)
	}
	r, err := age.Decrypt(bytes.NewReader(sealed), ident)
	if err != nil {
		t.Fatalf("opening a stock-age file with the exported identity in Go: %v", err)
	}
	var got bytes.Buffer
	got.ReadFrom(r)
	if !bytes.Equal(got.Bytes(), plain) {
		t.Fatalf("got %q", got.Bytes())
	}

	// The reverse: kith's age library seals to the recipient; stock age opens it.
	rcpt, err := age.ParseX25519Recipient(id.ArchiveRecipient)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rcpt)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	w.Close()
	dec = exec.Command(ageBin, "-d", "-i", keyFile)
	dec.Stdin = &buf
	if out, err := dec.Output(); err != nil || !bytes.Equal(out, plain) {
		t.Fatalf("stock age could not open a file sealed in Go: %v, %q", err, out)
	}

	// A different device's key does not open it.
	other := kithtest.NewDevice(t).Run(created.Mnemonic, "keys", "export", "--device", "1")
	os.WriteFile(keyFile, []byte(other.Stdout), 0o600)
	dec = exec.Command(ageBin, "-d", "-i", keyFile)
	dec.Stdin = bytes.NewReader(sealed)
	if err := dec.Run(); err == nil {
		t.Fatal("device 1's key opened a file sealed to device 0")
	}
}

func TestHomeInUseIsReported(t *testing.T) {
	a := kithtest.NewDevice(t)
	initDevice(t, a)
	lk, err := home.Lock(a.Home)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	start := time.Now()
	res := a.Run("", "id")
	if res.Code != 1 || !strings.Contains(res.Stderr, "in use by pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("want exit 1 saying the home is in use by pid %d: %s", os.Getpid(), res)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("reporting a busy home took %v: it should not wait", d)
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	a := kithtest.NewDevice(t)
	created := initDevice(t, a)
	db, err := bolt.Open(filepath.Join(a.Home, "kith.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("999"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	res := a.Run("", "id")
	if res.Code != 1 || !strings.Contains(res.Stderr, "newer") || !strings.Contains(res.Stderr, "upgrade") {
		t.Fatalf("a store from a newer kith should be refused with a hint to upgrade: %s", res)
	}
	_ = created
}

func TestVersion(t *testing.T) {
	var v struct{ Version, Protocol string }
	kithtest.NewDevice(t).JSON(&v, "", "version")
	if v.Protocol != "kith/1" || !strings.HasPrefix(v.Version, "v") {
		t.Fatalf("version = %+v", v)
	}
}

func mustDecodeHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLockRemove(t *testing.T) {
	a := kithtest.NewDevice(t)
	a.Env = []string{"KITH_PASSPHRASE=first lock"}
	created := initDevice(t, a)
	var out struct{ Sealed bool }
	a.JSON(&out, "", "keys", "lock", "--remove")
	if out.Sealed {
		t.Fatal("keys lock --remove left the keys sealed")
	}
	plain, err := keystore.Load(a.Home, nil)
	if err != nil {
		t.Fatalf("the keystore is not readable without a passphrase after --remove: %v", err)
	}
	if len(plain.Entries) != 3 {
		t.Fatalf("entries after --remove: %d", len(plain.Entries))
	}
	var id identity
	a.JSON(&id, "", "id")
	if id.DeviceID != created.DeviceID {
		t.Fatal("removing the lock changed the device ID")
	}
}

// kith version tells the build and, when one runs, the agent's version.
func TestVersionTellsTheAgents(t *testing.T) {
	d := kithtest.NewDevice(t)
	var v struct {
		Version, Protocol, Go, Agent string
	}
	d.JSON(&v, "", "version")
	if v.Version == "" || v.Protocol != "kith/1" || !strings.HasPrefix(v.Go, "go") || v.Agent != "" {
		t.Fatalf("version without an agent: %+v", v)
	}
	d.JSON(new(struct{}), "", "init")
	d.Start(kithtest.FreeAddr(t, "127.0.0.2"))
	d.JSON(&v, "", "version")
	if v.Agent != v.Version {
		t.Fatalf("version with an agent: %+v", v)
	}
	if res := d.Run("", "--version"); res.Code != 0 || res.Stdout != "kith "+v.Version+"\n" {
		t.Fatalf("kith --version: %s", res)
	}
}
