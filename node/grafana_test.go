package node

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

var (
	promSelector = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{`)
	promBy       = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
	promLabel    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
)

// grafanaQueries returns every PromQL expression of deploy/grafana/bourse.json.
func grafanaQueries(t *testing.T) []string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(file)), "deploy", "grafana", "bourse.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("deploy/grafana/bourse.json: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("only %d queries in the dashboard", len(exprs))
	}
	return exprs
}

// exposition reads Prometheus text output: each family (histogram samples
// folded into their family) and the label names seen on it.
func exposition(text string) map[string]map[string]bool {
	fams := map[string]map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			fams[strings.Fields(f)[0]] = map[string]bool{}
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		fam := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suf); ok && fams[base] != nil {
				fam = base
			}
		}
		if fams[fam] == nil {
			fams[fam] = map[string]bool{}
		}
		for _, m := range promLabel.FindAllStringSubmatch(line, -1) {
			fams[fam][m[1]] = true
		}
		fams[fam]["__sample:"+name] = true
	}
	return fams
}

// Every series the Grafana dashboard queries, and every label it groups
// by, is in a fresh provider node's /metrics: a renamed or dropped metric
// cannot leave an empty panel behind.
func TestGrafanaDashboardQueriesOnlyMetricsTheNodeExports(t *testing.T) {
	tn := newTestNet(t, 1, func(_ int, c *Config) {
		c.Provider.Enabled = true
		c.Provider.Executors = []string{"wasm"}
	})
	tn.startAll()
	tn.waitHeight(2, 30*time.Second)
	fams := exposition(metricsOf(t, tn, 0))
	for _, expr := range grafanaQueries(t) {
		sels := promSelector.FindAllStringSubmatch(expr, -1)
		if len(sels) == 0 {
			t.Errorf("query %q selects no metric with {...}", expr)
		}
		labels := map[string]bool{"le": true}
		for _, s := range sels {
			name := s[1]
			fam, found := "", false
			for f, ls := range fams {
				if ls["__sample:"+name] {
					fam, found = f, true
				}
			}
			if !found {
				t.Errorf("query %q: metric %s is not in the node's /metrics", expr, name)
				continue
			}
			for l := range fams[fam] {
				labels[l] = true
			}
		}
		for _, by := range promBy.FindAllStringSubmatch(expr, -1) {
			for _, l := range strings.Split(by[1], ",") {
				if l = strings.TrimSpace(l); l != "" && l != "instance" && !labels[l] {
					t.Errorf("query %q groups by %q, a label its metrics do not have", expr, l)
				}
			}
		}
	}
}
