//go:build !bourse_testhooks

package node

import "testing"

// Attack: a release node told to lie. The lying switch the e2e tests use
// exists only in a binary built with -tags bourse_testhooks: in any other
// build the environment variable does nothing.
func TestReleaseBuildIgnoresTheLyingTestHook(t *testing.T) {
	t.Setenv("BOURSE_TESTHOOK_LIE", "node1=withhold,node2=wrong")
	for _, m := range []string{"node1", "node2"} {
		if got := lieMode(m); got != "" {
			t.Fatalf("release build: %s lies %q", m, got)
		}
	}
}
