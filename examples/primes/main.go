// Command primes counts the primes below N (first argument, default
// 200000) by trial division: CPU-bound work whose amount the argument sets.
// It prints the count and the largest prime found.
package main

import (
	"fmt"
	"os"
	"strconv"
)

// Count returns how many primes are below n and the largest of them.
func Count(n int) (count, largest int) {
	for i := 2; i < n; i++ {
		prime := true
		for d := 2; d*d <= i; d++ {
			if i%d == 0 {
				prime = false
				break
			}
		}
		if prime {
			count++
			largest = i
		}
	}
	return count, largest
}

func main() {
	n := 200000
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v < 0 {
			fmt.Fprintf(os.Stderr, "primes: argument must be a non-negative integer, got %q\n", os.Args[1])
			os.Exit(2)
		}
		n = v
	}
	count, largest := Count(n)
	fmt.Printf("primes below %d: %d (largest %d)\n", n, count, largest)
}
