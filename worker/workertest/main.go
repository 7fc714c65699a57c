package workertest

import (
	"fmt"
	"os"
	"testing"
)

// Main runs a test binary's tests with *dir set to a fresh temporary
// directory (for built test programs and images), removes it afterwards
// and exits with the tests' code. Call it from TestMain.
func Main(m *testing.M, prefix string, dir *string) {
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*dir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}
