package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// Version is set at build time with -ldflags "-X .../cli.Version=v1.2.3".
var Version = "dev"

// Env is what a command may touch of the outside world. Tests fill it with
// buffers and a fake environment.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	Stdin  io.Reader
	// Getenv reads environment variables; nil means os.Getenv.
	Getenv func(string) string
	// IsTerminal reports whether stdin is an interactive terminal (for the
	// passphrase prompt and live progress). Nil means never.
	IsTerminal func() bool
	// IsTerminalWriter reports whether an output (Stdout, Stderr) is a
	// terminal: job output written to one has its control characters
	// escaped. Nil means: an *os.File on a terminal.
	IsTerminalWriter func(io.Writer) bool
	// OpenURL opens a link in the user's browser ('bourse ui --open');
	// nil means xdg-open (open on macOS).
	OpenURL func(ctx context.Context, url string) error
}

func (e Env) getenv(k string) string {
	if e.Getenv == nil {
		return os.Getenv(k)
	}
	return e.Getenv(k)
}

// UsageError marks a mistake in how a command was called; it exits with 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error { return &UsageError{Msg: fmt.Sprintf(format, args...)} }

// Run runs the bourse command line with args (args[0] is the program name)
// and returns the process exit code: 0 on success, 2 for usage errors, 1 for
// everything else. Errors are printed as one line on stderr.
func Run(ctx context.Context, args []string, env Env) int {
	app := New(env)
	err := app.RunContext(ctx, args)
	if err == nil {
		return 0
	}
	msg := err.Error()
	fmt.Fprintf(env.Stderr, "error: %s\n", strings.TrimSpace(msg))
	var ue *UsageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

const (
	flagHome     = "home"
	flagAPI      = "api"
	flagJSON     = "json"
	flagLogLevel = "log-level"
	flagPassFile = "passphrase-file"
	// flagAPIFingerprint pins the API's TLS certificate (https addresses).
	flagAPIFingerprint = "api-fingerprint"
)

// New builds the command tree. It never calls os.Exit.
func New(env Env) *ucli.App {
	app := &ucli.App{
		Name:                 "bourse",
		Usage:                "a peer-to-peer compute exchange settled on its own proof-of-stake chain",
		Version:              Version,
		Writer:               env.Stdout,
		ErrWriter:            env.Stderr,
		Reader:               env.Stdin,
		HideHelpCommand:      true,
		EnableBashCompletion: true,
		Suggest:              true,
		ExitErrHandler:       func(*ucli.Context, error) {},
		Flags:                globalFlags(env),
		OnUsageError:         onUsageError("bourse"),
		Metadata:             map[string]any{"env": env},
	}
	app.Commands = commands(env)
	// urfave/cli v2 only prints help for an unknown command; make it an error.
	app.Action = func(c *ucli.Context) error {
		if c.Args().Present() {
			return usagef("unknown command %q; run 'bourse --help' to see the commands", c.Args().First())
		}
		return ucli.ShowAppHelp(c)
	}
	finish(app.Commands, "bourse", env)
	return app
}

// globalFlags may be given before the command or after it: every command
// carries them, and flagString/flagBool read the innermost one that was set.
func globalFlags(env Env) []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: flagHome, Usage: "node home directory (env BOURSE_HOME)", DefaultText: "~/.bourse"},
		&ucli.StringFlag{Name: flagAPI, Usage: "daemon API address: host:port or https://host:port (env BOURSE_API; default: from the home's config.toml)"},
		&ucli.StringFlag{Name: flagAPIFingerprint, Usage: "SHA-256 fingerprint of the API's TLS certificate, from the node's 'bourse node id' (env BOURSE_API_FINGERPRINT)"},
		&ucli.BoolFlag{Name: flagJSON, Usage: "print machine-readable JSON"},
		&ucli.StringFlag{Name: flagLogLevel, Usage: "the daemon's log level: debug, info, warn or error (default: [log] level in config.toml; other commands do not log)"},
		&ucli.StringFlag{Name: flagPassFile, Usage: "read the keystore passphrase from this file (else BOURSE_PASSPHRASE, else a prompt)"},
	}
}

func onUsageError(path string) ucli.OnUsageErrorFunc {
	return func(_ *ucli.Context, err error, _ bool) error {
		return usagef("%v (see '%s --help')", err, path)
	}
}

// finish walks the command tree: usage errors become one-line errors, every
// leaf takes the global flags, and a group refuses an unknown subcommand
// instead of printing help and exiting 0.
func finish(cmds []*ucli.Command, parent string, env Env) {
	for _, c := range cmds {
		path := parent + " " + c.Name
		c.OnUsageError = onUsageError(path)
		if len(c.Subcommands) > 0 {
			finish(c.Subcommands, path, env)
			if c.Action == nil {
				c.Action = func(ctx *ucli.Context) error {
					if ctx.Args().Present() {
						return usagef("unknown command %q for '%s'; run '%s --help'", ctx.Args().First(), path, path)
					}
					return ucli.ShowSubcommandHelp(ctx)
				}
			}
			continue
		}
		c.Flags = append(c.Flags, globalFlags(env)...)
	}
}

// envOf maps global flags to the environment variables that stand in for
// them.
var envOf = map[string]string{flagHome: "BOURSE_HOME", flagAPI: "BOURSE_API", flagAPIFingerprint: "BOURSE_API_FINGERPRINT"}

// flagString reads a flag that may be set on the command or any parent:
// the innermost explicitly set value wins, then its environment variable
// (read through the injected Env), then the default.
func flagString(c *ucli.Context, name string) string {
	for _, ctx := range c.Lineage() {
		if ctx.IsSet(name) {
			return ctx.String(name)
		}
	}
	env, _ := c.App.Metadata["env"].(Env)
	if v := env.getenv(envOf[name]); envOf[name] != "" && v != "" {
		return v
	}
	if name == flagHome {
		return defaultHome(env)
	}
	return c.String(name)
}

func flagBool(c *ucli.Context, name string) bool {
	for _, ctx := range c.Lineage() {
		if ctx.IsSet(name) {
			return ctx.Bool(name)
		}
	}
	return c.Bool(name)
}

func defaultHome(env Env) string {
	if h := env.getenv("HOME"); h != "" {
		return filepath.Join(h, ".bourse")
	}
	return ".bourse"
}

func commands(env Env) []*ucli.Command {
	return []*ucli.Command{
		initCommand(env),
		nodeCommand(env),
		genesisCommand(env),
		daemonCommand(env),
		walletCommand(env),
		providerCommand(env),
		jobCommand(env),
		serviceCommand(env),
		marketCommand(env),
		chainCommand(env),
		txCommand(env),
		benchCommand(env),
		stakeCommand(env),
		uiCommand(env),
		testnetCommand(env),
		versionCommand(env),
		completionCommand(env),
	}
}
