package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/device"
	"github.com/kith-project/kith/internal/home"
	"github.com/kith-project/kith/internal/keystore"
	"github.com/kith-project/kith/internal/store"
)

// TestHints checks the one line a user sees for each library error with a
// hint: the texts are those the libraries printed themselves before the
// hints moved into the command line.
func TestHints(t *testing.T) {
	bolt := errors.New("invalid database")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&control.NoAgentError{Home: "/h"},
			`no agent is running for /h: start it with "kith --home /h run" (it stays in the foreground; use another terminal)`},
		{&control.SocketPathError{Path: "/long/agent.sock"},
			`control: the socket path /long/agent.sock is too long for a Unix socket (16 bytes): use a shorter --home`},
		{fmt.Errorf("keystore: reading /h/keys: %w", keystore.ErrNotFound),
			`keystore: reading /h/keys: no identity here: run kith init or kith restore`},
		{keystore.ErrLocked,
			`the keys are locked: set KITH_PASSPHRASE or run on a terminal to be asked`},
		{badInput(keystore.ErrWrongPassphrase),
			`the lock passphrase is wrong (set KITH_PASSPHRASE or type it at the prompt)`},
		{fmt.Errorf("changing the lock passphrase: %w", fmt.Errorf("%s: %w", "bad header", keystore.ErrCorrupt)),
			`changing the lock passphrase: bad header: the keys file is damaged or was modified (recreate it from the seed phrase with "kith restore --force")`},
		{fmt.Errorf("the file is in format version %d and this kith reads version %d: %w", 2, 1, keystore.ErrUnsupportedVersion),
			`the file is in format version 2 and this kith reads version 1: the keys file was written by a newer kith: upgrade kith`},
		{fmt.Errorf("store: opening %s: %w", "/h/kith.db", store.ErrInUse),
			`store: opening /h/kith.db: the database is in use by another process (is "kith run" running? stop it or use another --home)`},
		{&store.NewerSchemaError{Path: "/h/kith.db", Found: 2, Supported: 1},
			`store: /h/kith.db: this home was written by a newer kith (schema 2, this kith understands 1): upgrade kith`},
		{fmt.Errorf("store: opening %s: %w: %w", "/h/kith.db", store.ErrNotDatabase, bolt),
			`store: opening /h/kith.db: it is not a kith database or it is damaged (move it away to start afresh): invalid database`},
		{fmt.Errorf("store: bucket %s is missing: %w", "peers", store.ErrDamaged),
			`store: bucket peers is missing: the database is damaged (move it away to start afresh)`},
		{&home.InUseError{Dir: "/h", PID: 42},
			`home /h is in use by pid 42 (is "kith run" running? stop it or use another --home)`},
		{fmt.Errorf("finding the home folder: %w (set --home or KITH_HOME)", &home.DefaultError{Err: errors.New("$HOME is not defined")}),
			`finding the home folder: home: finding the default home folder: $HOME is not defined (set --home or KITH_HOME) (set --home or KITH_HOME)`},
		{fmt.Errorf("preparing the home folder: %w", &home.NotFolderError{Dir: "/h"}),
			`preparing the home folder: home: /h is not a folder: choose another --home`},
		{&device.KeysError{Problem: `keystore entry "window" is missing or damaged`},
			`keystore entry "window" is missing or damaged: restore this device from its seed phrase`},
		{errors.Join(fs.ErrNotExist, keystore.ErrLocked),
			"file does not exist\nthe keys are locked: set KITH_PASSPHRASE or run on a terminal to be asked"},
		{errors.New("no hint for this"), "no hint for this"},
	} {
		if got := withHints(tc.err); got != tc.want {
			t.Errorf("%v:\n got %s\nwant %s", tc.err, got, tc.want)
		}
	}
}
