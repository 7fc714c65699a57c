// Command hello prints a greeting and its arguments. The greeting comes
// from $GREETING (default "hello").
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	greeting := os.Getenv("GREETING")
	if greeting == "" {
		greeting = "hello"
	}
	who := "world"
	if len(os.Args) > 1 {
		who = strings.Join(os.Args[1:], " ")
	}
	fmt.Printf("%s, %s!\n", greeting, who)
}
