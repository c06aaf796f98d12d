package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kith-project/kith/internal/home"
	"github.com/kith-project/kith/internal/store"
)

// openedHome is a home folder locked for this command, with its store open.
type openedHome struct {
	dir   string
	lock  *home.Lockfile
	store *store.Store
}

func (h *openedHome) Close() error {
	err := h.store.Close()
	if lerr := h.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

// homeDir resolves the home folder from --home, KITH_HOME or the default.
func (g *globals) homeDir() (string, error) {
	flag := g.home
	if flag == "" {
		flag = g.env.Getenv("KITH_HOME")
	}
	dir, err := home.Resolve(flag)
	if err != nil {
		return "", fmt.Errorf("finding the home folder: %w", err)
	}
	return dir, nil
}

// openHome locks the home folder and opens its store. With create, a missing
// folder is made; without, a home that holds nothing is an error that says to
// run init or restore.
func (g *globals) openHome(create bool) (*openedHome, error) {
	dir, err := g.homeDir()
	if err != nil {
		return nil, err
	}
	if !create {
		if _, err := os.Stat(filepath.Join(dir, "kith.db")); errors.Is(err, os.ErrNotExist) {
			return nil, noIdentity(dir)
		}
	}
	if err := home.Ensure(dir); err != nil {
		return nil, fmt.Errorf("preparing the home folder: %w", err)
	}
	lk, err := home.Lock(dir)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(filepath.Join(dir, "kith.db"))
	if err != nil {
		lk.Close()
		return nil, err
	}
	return &openedHome{dir: dir, lock: lk, store: st}, nil
}

// noIdentity is the error for a home that holds no identity.
func noIdentity(dir string) error {
	return withHint(fmt.Errorf("no kith identity in %s", dir),
		`run "kith init" for a new identity, or "kith restore --device I" to restore one`)
}
