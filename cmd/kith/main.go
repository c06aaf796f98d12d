// Command kith is the kith agent and its command-line interface.
//
// Every subcommand lives in package internal/cli; this file only hands it
// the process's arguments, standard streams and environment.
package main

import (
	"os"

	"github.com/kith-project/kith/internal/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], cli.OSEnv()))
}
