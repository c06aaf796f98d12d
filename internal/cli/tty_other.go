//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package cli

import "errors"

// echoOff is not available here: the phrase reader falls back to reading
// each line with golang.org/x/term, which turns echo off line by line.
func echoOff(int) (func(), error) { return nil, errors.ErrUnsupported }

func pendingInput(int) bool { return false }

func flushInput(int) {}
