package store

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompactDestroysFreedPages: a deleted record's bytes stay in the file
// until Compact, and are gone after it; live records and the Store's
// methods keep working.
func TestCompactDestroysFreedPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	secret := "secret-" + strings.Repeat("x", 300)
	if err := s.Put(BucketConversations, "a", secret); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(BucketConversations, "b", "kept"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(BucketConversations, "a"); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(secret)) {
		t.Fatal("the deleted record is not in the file before compacting: the test shows nothing")
	}
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	raw, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("secret-")) {
		t.Fatal("the deleted record is still in the file after Compact")
	}
	var v string
	if ok, err := s.Get(BucketConversations, "b", &v); !ok || err != nil || v != "kept" {
		t.Fatalf("live record after Compact: %q %v %v", v, ok, err)
	}
	if err := s.Put(BucketConversations, "c", "new"); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Fatalf("files left beside the database: %v", ents)
	}
}
