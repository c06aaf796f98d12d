//go:build !unix || aix

package home

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

var errLocked = errors.New("lock held")

func tryLock(*os.File) error {
	return fmt.Errorf("locking a home folder is not supported on %s", runtime.GOOS)
}
