package wasm

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/workertest"
)

// TestExamples runs every example in examples/ and checks its output.
func TestExamples(t *testing.T) {
	e := newExecutor(t)
	defer e.Close(context.Background())
	cases := []struct {
		name   string
		args   []string
		env    map[string]string
		stdout string
		file   string // expected content of a file in the output dir
	}{
		{"hello", []string{"bourse", "users"}, map[string]string{"GREETING": "hi"}, "hi, bourse users!\n", ""},
		{"hello", nil, nil, "hello, world!\n", ""},
		{"primes", []string{"100"}, nil, "primes below 100: 25 (largest 97)\n", ""},
		{"primes", []string{"x"}, nil, "", ""},
		{"wordcount", []string{"b a b", "c"}, nil, "b 2\na 1\nc 1\n", "b 2\na 1\nc 1\n"},
		{"wordcount", nil, map[string]string{"WORDCOUNT_INPUT": "The the END"}, "the 2\nend 1\n", "the 2\nend 1\n"},
		{"docker-hello", []string{"wasm"}, nil, "hello from a container, wasm!\n", "hello from a container, wasm!\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := testJob(module(t, "github.com/bourse-net/bourse/examples/"+c.name), c.args...)
			j.ID, j.Env = workertest.NewID(), c.env
			out := t.TempDir()
			if err := e.Start(context.Background(), j, out); err != nil {
				t.Fatal(err)
			}
			x, err := e.Wait(context.Background(), j.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantState := worker.StateSucceeded
			if c.stdout == "" {
				wantState = worker.StateFailed
			}
			if x.State != wantState || string(x.Stdout) != c.stdout {
				t.Fatalf("%v: state %s stdout %q stderr %q; want %s %q", c.args, x.State, x.Stdout, x.Stderr, wantState, c.stdout)
			}
			if c.file != "" {
				ents, _ := os.ReadDir(out)
				if len(ents) != 1 {
					t.Fatalf("output dir: %v", ents)
				}
				b, _ := os.ReadFile(filepath.Join(out, ents[0].Name()))
				if string(b) != c.file {
					t.Fatalf("output file %q, want %q", b, c.file)
				}
			}
		})
	}
}
