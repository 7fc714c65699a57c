// Command bourse is the Bourse daemon and its command line.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bourse-net/bourse/cli"
	"golang.org/x/term"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args, cli.Env{
		Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin,
		IsTerminal: func() bool { return term.IsTerminal(int(os.Stdin.Fd())) },
	})
	stop()
	os.Exit(code)
}
