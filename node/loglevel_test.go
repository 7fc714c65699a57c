package node

import (
	"bytes"
	"strings"
	"testing"
)

// --log-level (Options.LogLevel) overrides the config's [log] level.
func TestLogLevelOptionOverridesTheConfig(t *testing.T) {
	for _, tc := range []struct {
		config, option   string
		debugShown, info bool
	}{
		{"info", "", false, true},
		{"info", "debug", true, true},
		{"debug", "warn", false, false},
		{"error", "info", false, true},
	} {
		var buf bytes.Buffer
		n := &Node{cfg: Config{Log: LogConfig{Level: tc.config}}}
		if err := n.setupLog(Options{LogOutput: &buf, LogLevel: tc.option}); err != nil {
			t.Fatal(err)
		}
		n.log.Debug("dbg-line")
		n.log.Info("info-line")
		if got := strings.Contains(buf.String(), "dbg-line"); got != tc.debugShown {
			t.Errorf("config %s, option %q: debug shown %v", tc.config, tc.option, got)
		}
		if got := strings.Contains(buf.String(), "info-line"); got != tc.info {
			t.Errorf("config %s, option %q: info shown %v", tc.config, tc.option, got)
		}
	}
	n := &Node{cfg: Config{Log: LogConfig{Level: "info"}}}
	if err := n.setupLog(Options{LogLevel: "loud"}); err == nil || !strings.Contains(err.Error(), "want debug, info, warn or error") {
		t.Fatalf("unknown level: %v", err)
	}
}
