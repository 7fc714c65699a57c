package cli

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	ucli "github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// passphrase finds the keystore passphrase: --passphrase-file, then
// BOURSE_PASSPHRASE, then a prompt when stdin is a terminal. Never a flag
// value: those end up in shell history and process listings.
func passphrase(c *ucli.Context, env Env, confirm bool) (string, error) {
	if path := flagString(c, flagPassFile); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("read passphrase file: %w", err)
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return "", fmt.Errorf("passphrase file %s is empty", path)
		}
		return p, nil
	}
	if p := env.getenv("BOURSE_PASSPHRASE"); p != "" {
		return p, nil
	}
	if env.IsTerminal == nil || !env.IsTerminal() {
		return "", errors.New("no passphrase: set BOURSE_PASSPHRASE or pass --passphrase-file FILE")
	}
	p, err := prompt(env, "Keystore passphrase: ")
	if err != nil {
		return "", err
	}
	if confirm {
		again, err := prompt(env, "Repeat passphrase: ")
		if err != nil {
			return "", err
		}
		if again != p {
			return "", errors.New("the passphrases do not match")
		}
	}
	if p == "" {
		return "", errors.New("empty passphrase")
	}
	return p, nil
}

func prompt(env Env, label string) (string, error) {
	fmt.Fprint(env.Stderr, label)
	defer fmt.Fprintln(env.Stderr)
	if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		b, err := term.ReadPassword(int(f.Fd()))
		return string(b), err
	}
	line, err := bufio.NewReader(env.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("read passphrase: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}
