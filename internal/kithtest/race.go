//go:build race

package kithtest

const raceEnabled = true
