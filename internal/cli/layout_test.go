package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const (
	modulePath = "github.com/kith-project/kith"
	agentPkg   = modulePath + "/agent"
	runPkg     = modulePath + "/internal/cli/runcmd"
)

// moduleRoot is the folder of go.mod, two levels above this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	return root
}

// TestOnlyRunImportsAgent checks that the command line, the harness and
// the tests reach the agent only through the local API: no package but the
// run command imports package agent, in its code or its tests.
func TestOnlyRunImportsAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,TestImports,XTestImports", "./...")
	cmd.Dir = moduleRoot(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	seen := 0
	for {
		var p struct {
			ImportPath                         string
			Imports, TestImports, XTestImports []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		if p.ImportPath == agentPkg || p.ImportPath == runPkg {
			continue
		}
		for _, imports := range [][]string{p.Imports, p.TestImports, p.XTestImports} {
			if slices.Contains(imports, agentPkg) {
				t.Errorf("%s imports %s: use internal/control's types and client instead", p.ImportPath, agentPkg)
			}
		}
	}
	if seen < 10 {
		t.Fatalf("go list listed only %d packages", seen)
	}
}

// routeLike matches the start of an API path ("/v", a version number, "/"),
// but not a versioned label such as "kith/v1/sas".
var routeLike = regexp.MustCompile(`(^|[^\w/.-])/v[0-9]+/`)

// TestRoutesOnlyInControl checks that the API's routes are spelled only in
// internal/control: everything else calls the typed client.
func TestRoutesOnlyInControl(t *testing.T) {
	root := moduleRoot(t)
	control := filepath.Join(root, "internal", "control")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == control || (path != root && strings.HasPrefix(d.Name(), ".")) || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if routeLike.MatchString(line) {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s:%d spells an API route: %s", rel, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
