package api

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParseServiceSpec(t *testing.T) {
	s, err := ParseServiceSpec([]byte("kind: service\nname: hello\npayload: hello.wasm\nreplicas: {min: 2, max: 4}\nprice_per_period: 50\nperiod: 2s\nduration: 9s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Replicas.Initial != 2 || s.Executor != ExecutorWASM || s.Placement != PlaceCheapest || s.Resources.CPU == 0 {
		t.Fatalf("defaults: %+v", s)
	}
	if b, _ := s.BudgetUnits(); b != 5*2*50 {
		t.Fatalf("9s of 2s periods for 2 replicas at 50: budget %d, want 500", b)
	}
	bad := map[string]string{
		"kind: job\nname: a\nprice_per_period: 1\nbudget: 1\n":                                     "kind",
		"name: Hello\nprice_per_period: 1\nbudget: 1\n":                                            "name",
		"name: a\nbudget: 1\n":                                                                     "price_per_period",
		"name: a\nprice_per_period: 1\n":                                                           "budget",
		"name: a\nprice_per_period: 1\nbudget: 1\nduration: 1m\n":                                  "duration",
		"name: a\nprice_per_period: 1\nbudget: 1\nreplicas: {min: 3, max: 2}\n":                    "replicas",
		"name: a\nprice_per_period: 1\nbudget: 1\nreplicas: {min: 1, max: 17}\n":                   "replicas",
		"name: a\nprice_per_period: 1\nbudget: 1\nperiod: 10ms\n":                                  "period",
		"name: a\nprice_per_period: 1\nbudget: 1\nexecutor: exec\n":                                "executor",
		"name: a\nprice_per_period: 1\nbudget: 1\nexecutor: docker\n":                              "image",
		"name: a\nprice_per_period: 1\nbudget: 1\nexecutor: docker\nimage: busybox:latest\n":       "image",
		"name: a\nprice_per_period: 1\nbudget: 1\nimage: sha256:" + strings.Repeat("a", 64) + "\n": "image",
		"name: a\nprice_per_period: 1\nbudget: 1\nport: 80\n":                                      "port",
		"name: a\nprice_per_period: 1\nbudget: 1\nexecutor: docker\nimage: sha256:" + strings.Repeat("a", 64) + "\nport: 80\nenv: {PORT: \"81\"}\n": "env.PORT",
		"name: a\nprice_per_period: 1\nbudget: 1\nresources: {cpu: 100, memory: 10, disk: 5}\n":                                                     "resources",
		"name: a\nprice_per_period: 1\nbudget: 1\nsurprise: 1\n":                                                                                    "surprise",
		"name: a\nprice_per_period: 18446744073709551615\nduration: 1000h\nperiod: 1s\n":                                                            "overflows",
		"name: a\nprice_per_period: 1\nbudget: 1\n---\nname: b\n":                                                                                   "more than one",
	}
	docker, err := ParseServiceSpec([]byte("name: a\nprice_per_period: 1\nbudget: 1\nexecutor: docker\nimage: sha256:" + strings.Repeat("a", 64) + "\n"))
	if err != nil || docker.Port != DefaultServicePort {
		t.Fatalf("a docker service: %+v %v, want port %d by default", docker, err, DefaultServicePort)
	}
	for in, want := range bad {
		_, err := ParseServiceSpec([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrBadRequest) {
			t.Errorf("%q: %v, want a bad request naming %q", in, err, want)
		}
	}
}

func TestJainFairness(t *testing.T) {
	for _, c := range []struct {
		xs   []uint64
		want float64
	}{{nil, 1}, {[]uint64{0, 0}, 1}, {[]uint64{5, 5, 5}, 1}, {[]uint64{9, 0, 0}, 1.0 / 3}, {[]uint64{1, 3}, 16.0 / 20}} {
		if got := JainFairness(c.xs); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%v: %v, want %v", c.xs, got, c.want)
		}
	}
}
