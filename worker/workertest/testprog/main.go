// Command testprog is the program the executor contract suite runs in every
// backend (built for wasip1/wasm, and natively). Its first argument picks a
// behaviour; see usage.
package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// It avoids fmt, net and crypto so the wasm build stays small (the suite
// compiles it often, under the race detector too).

func println(w *os.File, parts ...string) {
	w.WriteString(strings.Join(parts, " ") + "\n")
}

const usage = `testprog MODE [ARGS]
  hello ARGS...      print "hello ARGS" to stdout and "note" to stderr
  exit N             exit with code N
  env KEY            print the value of KEY
  write NAME TEXT    write TEXT to $BOURSE_OUTPUT/NAME
  loop               print "looping" then spin forever
  alloc              allocate memory without bound
  flood              write to stdout forever
  fill               write 64 KiB files to $BOURSE_OUTPUT forever
  readhost PATH      print a host file (fails in a sandbox)
  linkout PATH       symlink $BOURSE_OUTPUT/up to ../../../../.. and print up/PATH
  dial ADDR          connect to a TCP address (fails in a sandbox)
  rand               print 16 random bytes and the wall clock
  escape             start a sleeping copy in a new session, print its pid
  forkbomb N         start up to N sleeping copies, print how many started
  sleep              sleep forever`

var sink [][]byte

func main() {
	if len(os.Args) < 2 {
		println(os.Stderr, usage)
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "hello":
		println(os.Stdout, "hello", strings.Join(args, " "))
		println(os.Stderr, "note")
	case "exit":
		n, _ := strconv.Atoi(args[0])
		println(os.Stdout, "exiting with", strconv.Itoa(n))
		os.Exit(n)
	case "env":
		println(os.Stdout, os.Getenv(args[0]))
	case "write":
		p := filepath.Join(os.Getenv("BOURSE_OUTPUT"), args[0])
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			fail(err)
		}
		if err := os.WriteFile(p, []byte(args[1]), 0o644); err != nil {
			fail(err)
		}
	case "loop":
		println(os.Stdout, "looping")
		x := 0
		for {
			x++
		}
	case "alloc":
		println(os.Stdout, "allocating")
		// No collector: under an rlimit, Go 1.26's collector can fault
		// when the kernel refuses a mapping mid-cycle (SIGSEGV in
		// spanQueue.tryDrain, 3 runs in 40 here) instead of reporting
		// "out of memory". Without it, the allocator reports.
		debug.SetGCPercent(-1)
		for i := 0; ; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(i + j)
			}
			sink = append(sink, b)
		}
	case "fill":
		println(os.Stdout, "filling")
		chunk := make([]byte, 64<<10)
		for i := 0; ; i++ {
			if err := os.WriteFile(filepath.Join(os.Getenv("BOURSE_OUTPUT"), "f"+strconv.Itoa(i)), chunk, 0o644); err != nil {
				fail(err)
			}
		}
	case "flood":
		line := []byte(strings.Repeat("flood ", 1000) + "\n")
		for {
			if _, err := os.Stdout.Write(line); err != nil {
				fail(err)
			}
		}
	case "readhost":
		b, err := os.ReadFile(args[0])
		if err != nil {
			fail(err)
		}
		os.Stdout.Write(b)
	case "linkout":
		up := filepath.Join(os.Getenv("BOURSE_OUTPUT"), "up")
		if err := os.Symlink("../../../../..", up); err != nil {
			fail(err)
		}
		b, err := os.ReadFile(filepath.Join(up, args[0]))
		if err != nil {
			fail(err)
		}
		os.Stdout.Write(b)
	case "dial":
		if err := dial(args[0]); err != nil {
			fail(err)
		}
		println(os.Stdout, "connected")
	case "rand":
		println(os.Stdout, strconv.FormatUint(rand.Uint64(), 16), strconv.FormatUint(rand.Uint64(), 16),
			strconv.FormatInt(time.Now().UnixNano(), 10))
	case "escape":
		if err := escape(); err != nil {
			fail(err)
		}
	case "forkbomb":
		n, _ := strconv.Atoi(args[0])
		forkbomb(n)
	case "sleep":
		sleepForever()
	default:
		println(os.Stderr, usage)
		os.Exit(2)
	}
}

func fail(err error) {
	println(os.Stderr, "error:", err.Error())
	os.Exit(1)
}
