//go:build bourse_testhooks

package node

import (
	"os"
	"strings"
)

// Test hooks: only in a binary built with -tags bourse_testhooks (the e2e
// tests build one to run lying providers); a release build has none
// (testhooks_off.go), so no configuration or environment can make a
// release node lie. BOURSE_TESTHOOK_LIE is a comma-separated list of
// moniker=mode: "withhold" (serve no result) or "wrong" (commit and serve
// a result that is not the run's).
func lieMode(moniker string) string {
	for _, kv := range strings.Split(os.Getenv("BOURSE_TESTHOOK_LIE"), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == moniker {
			return v
		}
	}
	return ""
}
