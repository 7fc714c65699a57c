// Command testprog is the program the executor contract suite runs in every
// backend (built for wasip1/wasm, and natively). Its first argument picks a
// behaviour; see usage.
package main

import (
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const usage = `testprog MODE [ARGS]
  hello ARGS...      print "hello ARGS" to stdout and "note" to stderr
  exit N             exit with code N
  env KEY            print the value of KEY
  write NAME TEXT    write TEXT to $BOURSE_OUTPUT/NAME
  loop               print "looping" then spin forever
  alloc              allocate memory without bound
  flood              write to stdout forever
  readhost PATH      print a host file (fails in a sandbox)
  dial ADDR          connect to a TCP address (fails in a sandbox)
  rand               print 16 random bytes and the wall clock`

var sink [][]byte

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "hello":
		fmt.Println("hello", strings.Join(args, " "))
		fmt.Fprintln(os.Stderr, "note")
	case "exit":
		n, _ := strconv.Atoi(args[0])
		fmt.Println("exiting with", n)
		os.Exit(n)
	case "env":
		fmt.Println(os.Getenv(args[0]))
	case "write":
		p := filepath.Join(os.Getenv("BOURSE_OUTPUT"), args[0])
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			fail(err)
		}
		if err := os.WriteFile(p, []byte(args[1]), 0o644); err != nil {
			fail(err)
		}
	case "loop":
		fmt.Println("looping")
		x := 0
		for {
			x++
		}
	case "alloc":
		fmt.Println("allocating")
		for i := 0; ; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(i + j)
			}
			sink = append(sink, b)
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
		fmt.Printf("%s", b)
	case "dial":
		c, err := net.Dial("tcp", args[0])
		if err != nil {
			fail(err)
		}
		c.Close()
		fmt.Println("connected")
	case "rand":
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			fail(err)
		}
		fmt.Printf("%x %d\n", b, time.Now().UnixNano())
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}
