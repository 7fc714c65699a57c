// Command wordcount counts words. Its input is the arguments joined by
// spaces or, with no arguments, $WORDCOUNT_INPUT. It prints "word count"
// lines, most frequent first (ties in word order), and, when
// $BOURSE_OUTPUT names a directory, also writes them to counts.txt there.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
)

func main() {
	input := strings.Join(os.Args[1:], " ")
	if len(os.Args) < 2 {
		input = os.Getenv("WORDCOUNT_INPUT")
	}
	counts := map[string]int{}
	for _, w := range strings.FieldsFunc(strings.ToLower(input), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	}) {
		counts[w]++
	}
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	sort.Slice(words, func(i, j int) bool {
		if counts[words[i]] != counts[words[j]] {
			return counts[words[i]] > counts[words[j]]
		}
		return words[i] < words[j]
	})
	var b strings.Builder
	for _, w := range words {
		fmt.Fprintf(&b, "%s %d\n", w, counts[w])
	}
	fmt.Print(b.String())
	if dir := os.Getenv("BOURSE_OUTPUT"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "counts.txt"), []byte(b.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "wordcount:", err)
			os.Exit(1)
		}
	}
}
