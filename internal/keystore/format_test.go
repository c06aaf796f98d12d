package keystore

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// countingReader yields 0, 1, 2, … so that a sealed file is reproducible.
type countingReader struct{ next byte }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.next
		r.next++
	}
	return len(p), nil
}

// goldenSecrets are the secrets in the golden files: not random, so that the
// files can be checked byte for byte.
func goldenSecrets() Secrets {
	s := Secrets{Entries: map[string][]byte{
		"device-ed25519": bytes.Repeat([]byte{0x11}, 32),
		"archive-x25519": bytes.Repeat([]byte{0x22}, 32),
		"window":         bytes.Repeat([]byte{0x33}, 32),
	}}
	return s
}

var goldenLock = []byte("correct horse battery staple")

// goldenParams are small so that the test is fast; Load reads them from the
// header.
var goldenParams = params{Time: 1, MemoryKiB: 64, Threads: 1}

// TestGolden pins format version 1: the files under testdata were written by
// this code, and must keep loading and keep being written the same way.
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		file string
		lock []byte
	}{
		{"v1-unsealed.keys", nil},
		{"v1-sealed.keys", goldenLock},
	} {
		t.Run(tc.file, func(t *testing.T) {
			dir := t.TempDir()
			if err := save(dir, goldenSecrets(), tc.lock, goldenParams, &countingReader{}); err != nil {
				t.Fatal(err)
			}
			written, err := os.ReadFile(filepath.Join(dir, FileName))
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(golden, written, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(written, want) {
				t.Errorf("Save wrote\n%s\nwant\n%s", written, want)
			}

			if err := os.WriteFile(filepath.Join(dir, FileName), want, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := Load(dir, tc.lock)
			if err != nil {
				t.Fatal(err)
			}
			assertEqualSecrets(t, got, goldenSecrets())
		})
	}
}

func TestGoldenUnsealedHeader(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "v1-unsealed.keys"))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitN(data, []byte("\n"), 3)
	if string(lines[0]) != "kith-keystore v1" || string(lines[1]) != `{"kdf":"none","aead":"none"}` {
		t.Errorf("unsealed header is %q", lines[:2])
	}
}

func TestHeaderValidation(t *testing.T) {
	valid := func() header {
		return header{KDF: kdfArgon2, Time: 3, MemoryKiB: 65536, Threads: 4,
			Salt: make([]byte, 16), Check: make([]byte, 16), AEAD: aeadXChaCha, Nonce: make([]byte, 24)}
	}
	if h := valid(); h.validate() != nil {
		t.Fatalf("valid header refused: %v", h.validate())
	}
	for name, mutate := range map[string]func(*header){
		"unknown kdf":      func(h *header) { h.KDF = "scrypt" },
		"unknown aead":     func(h *header) { h.AEAD = "aes-gcm" },
		"zero time":        func(h *header) { h.Time = 0 },
		"huge time":        func(h *header) { h.Time = maxTime + 1 },
		"zero threads":     func(h *header) { h.Threads = 0 },
		"too little mem":   func(h *header) { h.MemoryKiB = 8*4 - 1 },
		"huge memory":      func(h *header) { h.MemoryKiB = maxMemory + 1 },
		"short salt":       func(h *header) { h.Salt = h.Salt[:15] },
		"long salt":        func(h *header) { h.Salt = make([]byte, 65) },
		"short check":      func(h *header) { h.Check = h.Check[:8] },
		"short nonce":      func(h *header) { h.Nonce = h.Nonce[:12] },
		"none with params": func(h *header) { h.KDF = kdfNone; h.AEAD = aeadNone },
		"none with aead":   func(h *header) { *h = header{KDF: kdfNone, AEAD: aeadXChaCha} },
	} {
		h := valid()
		mutate(&h)
		if err := h.validate(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
}

func TestDecodeRefusesUnknownHeaderField(t *testing.T) {
	data := []byte("kith-keystore v1\n{\"kdf\":\"none\",\"aead\":\"none\",\"extra\":1}\ne30=\n")
	if _, err := decode(data); !errors.Is(err, ErrCorrupt) {
		t.Errorf("got %v, want ErrCorrupt", err)
	}
}

// FuzzDecode checks that the decoder never panics, and that whatever it
// accepts it writes back in a form that decodes to the same thing.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"v1-unsealed.keys", "v1-sealed.keys"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/2])
		f.Add(bytes.Replace(data, []byte("v1"), []byte("v2"), 1))
	}
	f.Add([]byte(""))
	f.Add([]byte("kith-keystore v1\n"))
	f.Add([]byte("kith-keystore v1\n{\"kdf\":\"none\",\"aead\":\"none\"}\ne30=\n"))
	f.Add([]byte("kith-keystore v1\n{\"kdf\":\"none\",\"aead\":\"none\"}\neyJlbnRyaWVzIjp7fX0=\n"))
	f.Add([]byte("kith-keystore v1\n{\"kdf\":\"argon2id\",\"time\":1,\"memory_kib\":8,\"threads\":1}\n\n"))
	f.Add([]byte("kith-keystore v99999999999\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		fl, err := decode(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("decode error %v is neither ErrCorrupt nor ErrUnsupportedVersion", err)
			}
			return
		}
		again, err := decode(fl.encode())
		if err != nil {
			t.Fatalf("re-encoded file does not decode: %v", err)
		}
		if !reflect.DeepEqual(fl, again) {
			t.Fatalf("round trip changed the file: %+v became %+v", fl, again)
		}
		if fl.sealed() {
			return // opening runs argon2id; the unit tests cover it
		}
		s, err := decodePayload(fl.body)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("payload error %v is not ErrCorrupt", err)
			}
			return
		}
		plain, err := encodePayload(s)
		if err != nil {
			t.Fatalf("accepted secrets do not encode: %v", err)
		}
		back, err := decodePayload(plain)
		if err != nil {
			t.Fatalf("re-encoded secrets do not decode: %v", err)
		}
		if len(back.Entries) != len(s.Entries) {
			t.Fatalf("round trip changed the number of entries")
		}
		for k, v := range s.Entries {
			if !bytes.Equal(back.Entries[k], v) {
				t.Fatalf("round trip changed entry %q", k)
			}
		}
	})
}
