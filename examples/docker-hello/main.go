// Command docker-hello is the program inside the docker example image: it
// prints a greeting and its arguments, and writes them to
// $BOURSE_OUTPUT/greeting.txt. It also builds for wasip1 like every
// example.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	msg := fmt.Sprintf("hello from a container, %s!\n", strings.Join(os.Args[1:], " "))
	fmt.Print(msg)
	if dir := os.Getenv("BOURSE_OUTPUT"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "greeting.txt"), []byte(msg), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "docker-hello:", err)
			os.Exit(1)
		}
	}
}
