package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"syscall"
	"testing"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/device"
	"github.com/kith-project/kith/internal/home"
	"github.com/kith-project/kith/internal/keystore"
	"github.com/kith-project/kith/internal/store"
)

// TestHints checks what a user reads for each library error with a hint:
// the error on one line, without package prefixes, and each hint on its
// own line.
func TestHints(t *testing.T) {
	bolt := errors.New("invalid database")
	running := `is "kith run" running? stop it, or use another --home`
	for _, tc := range []struct {
		err   error
		msg   string
		hints []string
	}{
		{&control.NoAgentError{Home: "/h"}, `no agent is running for /h`,
			[]string{`start it with "kith --home /h run" (it stays in the foreground; use another terminal)`}},
		{&control.SocketPathError{Path: "/long/agent.sock"},
			`the socket path /long/agent.sock is too long for a Unix socket (16 bytes)`, []string{"use a shorter --home"}},
		{fmt.Errorf("keystore: reading /h/keys: %w", keystore.ErrNotFound), `reading /h/keys: no identity here`,
			[]string{`run "kith init" for a new identity, or "kith restore --device I" to restore one`}},
		{keystore.ErrLocked, `the keys are locked`, []string{"set KITH_PASSPHRASE, or run on a terminal to be asked", forgotHint}},
		{badInput(keystore.ErrWrongPassphrase), `the lock passphrase is wrong`, []string{forgotHint}},
		{badInput(wrongEnvPassphrase{}), `the lock passphrase is wrong (it came from KITH_PASSPHRASE)`,
			[]string{"check KITH_PASSPHRASE, or unset it to be asked on the terminal", forgotHint}},
		{fmt.Errorf("changing the lock passphrase: %w", fmt.Errorf("%s: %w", "bad header", keystore.ErrCorrupt)),
			`changing the lock passphrase: bad header: the keys file is damaged or was modified`,
			[]string{`recreate it from the seed phrase with "kith restore --force --device I"`}},
		{fmt.Errorf("store: opening %s: %w", "/h/kith.db", store.ErrInUse),
			`opening /h/kith.db: the database is in use by another process`, []string{running}},
		{&store.NewerSchemaError{Path: "/h/kith.db", Found: 2, Supported: 1},
			`/h/kith.db: this home was written by a newer kith (schema 2, this kith understands 1)`, []string{"upgrade kith"}},
		{fmt.Errorf("store: opening %s: %w: %w", "/h/kith.db", store.ErrNotDatabase, bolt),
			`opening /h/kith.db: it is not a kith database or it is damaged: invalid database`, []string{"move it away to start afresh"}},
		{&home.InUseError{Dir: "/h", PID: 42}, `home /h is in use by pid 42`, []string{running}},
		{fmt.Errorf("finding the home folder: %w", &home.DefaultError{Err: errors.New("$HOME is not defined")}),
			`finding the home folder: finding the default home folder: $HOME is not defined`, []string{"set --home or KITH_HOME"}},
		{fmt.Errorf("preparing the home folder: %w", &home.NotFolderError{Dir: "/h"}),
			`preparing the home folder: /h is not a folder`, []string{"choose another --home"}},
		{&device.KeysError{Problem: `keystore entry "window" is missing or damaged`},
			`keystore entry "window" is missing or damaged`, []string{`restore this device from its seed phrase: "kith restore --force --device I"`}},
		{errors.Join(fs.ErrNotExist, keystore.ErrLocked), "file does not exist; the keys are locked",
			[]string{"set KITH_PASSPHRASE, or run on a terminal to be asked", forgotHint}},
		{withHint(errors.New("own"), "first", "second"), "own", []string{"first", "second"}},
		{fmt.Errorf("opening the UDP port 127.0.0.1:7117: listening on 127.0.0.1:7117: %w", &net.OpError{Op: "listen", Net: "udp",
			Addr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7117}, Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}),
			"opening the UDP port 127.0.0.1:7117: address already in use",
			[]string{"another program, or another kith run, uses that port: choose another with --listen HOST:PORT"}},
		{errors.New("no hint for this"), "no hint for this", nil},
	} {
		msg, hs := explain(tc.err)
		if msg != tc.msg || !slices.Equal(hs, tc.hints) {
			t.Errorf("%v:\n got %s %q\nwant %s %q", tc.err, msg, hs, tc.msg, tc.hints)
		}
	}
}
