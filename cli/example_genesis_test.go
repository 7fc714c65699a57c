package cli

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Assembling a genesis from the command line: a new file, a validator
// given by its address and public key (or --from the JSON of 'bourse node
// id --json'), an account, then the hash every operator compares.
func ExampleRun_genesis() {
	dir, _ := os.MkdirTemp("", "genesis-example")
	defer os.RemoveAll(dir)
	gen := filepath.Join(dir, "genesis.json")
	env := Env{Stdout: io.Discard, Stderr: os.Stdout, Stdin: strings.NewReader(""), Getenv: func(string) string { return "" }}
	for _, args := range [][]string{
		{"genesis", "new", gen, "--chain-id", "acme-1", "--time", "2026-01-01T00:00:00Z"},
		{"genesis", "add-validator", gen, "--address", exampleAddr, "--pub-key", examplePub, "--stake", "1000000"},
		{"genesis", "add-account", gen, "--address", exampleAddr, "--balance", "1000000000"},
		{"genesis", "validate", gen},
	} {
		if code := Run(context.Background(), append([]string{"bourse"}, args...), env); code != 0 {
			return
		}
	}
	env.Stdout = os.Stdout
	Run(context.Background(), []string{"bourse", "genesis", "hash", gen}, env)
	// A public key that is not the address's is refused.
	Run(context.Background(), []string{"bourse", "genesis", "add-validator", gen, "--address", exampleAddr,
		"--pub-key", strings.Repeat("11", 32), "--stake", "5"}, env)
	// Output:
	// 2b268f916af44c6e05a0d477715b6bc99f101dfd7dff4c71fa50b8ba9f30fed4
	// error: add-validator: public key 1111111111111111111111111111111111111111111111111111111111111111 belongs to bo1qt2yngclhvn8ere496vk3fu78e0ujhqmdkm0h5, not bo1y8lrrhap2j3xzcntlp2qgm7jyudhhm2tlc6prv
}
