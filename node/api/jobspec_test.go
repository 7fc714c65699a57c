package api

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const helloSpec = `
name: hello
executor: wasm            # wasm | docker | exec
payload: hello.wasm
args: ["world"]
env: {GREETING: "hello"}
resources: {cpu: 250, memory: 64, disk: 16, gpus: 0}
max_price: 2000000
timeout: 30s
deadline: 30s
placement: cheapest
constraints: {region: "", labels: {}, executors: []}
replicas: 1
`

func TestParseJobSpecExample(t *testing.T) {
	s, err := ParseJobSpec([]byte(helloSpec))
	if err != nil {
		t.Fatal(err)
	}
	want := JobSpec{
		Name: "hello", Executor: "wasm", Payload: "hello.wasm", Args: []string{"world"},
		Env:       map[string]string{"GREETING": "hello"},
		Resources: Resources{CPU: 250, Memory: 64, Disk: 16}, MaxPrice: 2000000,
		Timeout: Duration{30 * time.Second}, Deadline: Duration{30 * time.Second},
		Placement: "cheapest", Replicas: 1, Visibility: VisibilityPrivate,
		Constraints: Constraints{Labels: map[string]string{}, Executors: []string{}},
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got  %+v\nwant %+v", s, want)
	}
}

func TestParseJobSpecDefaults(t *testing.T) {
	s, err := ParseJobSpec([]byte("payload: a.wasm\nmax_price: 5\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Executor != ExecutorWASM || s.Resources != DefaultResources || s.Timeout.Duration != DefaultTimeout ||
		s.Deadline.Duration != DefaultDeadline || s.Placement != PlaceCheapest || s.Replicas != 1 {
		t.Fatalf("defaults not applied: %+v", s)
	}
}

func TestParseJobSpecErrors(t *testing.T) {
	base := "payload: a.wasm\nmax_price: 10\n"
	cases := []struct {
		name, spec, field, msg string
	}{
		{"empty", "", "", "empty"},
		{"bad yaml", "name: [unclosed", "", "did not find expected"},
		{"not a mapping", "hello", "", "cannot unmarshal"},
		{"unknown field", base + "colour: red\n", "", "field colour not found"},
		{"unknown executor", base + "executor: jvm\n", "executor", `unknown executor "jvm"`},
		{"missing payload", "max_price: 10\n", "payload", "missing"},
		{"docker without image", "executor: docker\nmax_price: 10\n", "image", "needs an image"},
		{"docker tarball without an image id", "executor: docker\nimage: x:1\npayload: a\nmax_price: 10\n", "image", "names the image by its ID"},
		{"wasm with image", base + "image: x:1\n", "image", "only docker"},
		{"negative cpu", base + "resources: {cpu: -1, memory: 1}\n", "resources.cpu", "negative"},
		{"negative memory", base + "resources: {cpu: 1, memory: -64}\n", "resources.memory", "negative"},
		{"zero cpu", base + "resources: {cpu: 0, memory: 64}\n", "resources.cpu", "must be positive"},
		{"absurd cpu", base + "resources: {cpu: 99999999999, memory: 64}\n", "resources.cpu", "absurd"},
		{"absurd memory", base + "resources: {cpu: 1, memory: 99999999999}\n", "resources.memory", "absurd"},
		{"absurd gpus", base + "resources: {cpu: 1, memory: 1, gpus: 1000}\n", "resources.gpus", "absurd"},
		{"cpu not a number", base + "resources: {cpu: lots, memory: 1}\n", "", "cannot unmarshal"},
		{"negative price", "payload: a\nmax_price: -3\n", "max_price", "negative"},
		{"missing price", "payload: a\n", "max_price", "missing"},
		{"bad duration", base + "timeout: soon\n", "", `"soon" is not a duration`},
		{"unitless duration", base + "timeout: 30\n", "", "is not a duration"},
		{"negative duration", base + "deadline: -5s\n", "deadline", "must be positive"},
		{"absurd timeout", base + "timeout: 9999h\n", "timeout", "at most"},
		{"placement", base + "placement: random\n", "placement", `unknown placement "random"`},
		{"visibility", base + "visibility: friends\n", "visibility", `"friends": want private`},
		{"constraint executor", base + "constraints: {executors: [gpu]}\n", "constraints.executors", "unknown executor"},
		{"constraint executors exclude the job's", base + "constraints: {executors: [docker, exec]}\n", "constraints.executors", `does not include the job's executor "wasm"`},
		{"gpus requested", base + "resources: {cpu: 1, memory: 1, gpus: 1}\n", "resources.gpus", "no provider can offer GPUs yet"},
		{"region and regions", base + "constraints: {region: a, regions: {b: 1}}\n", "constraints.regions", "not both"},
		{"region weight zero", base + "constraints: {regions: {a: 0}}\n", "constraints.regions", "weight 0 not in 1..100"},
		{"region weight above", base + "constraints: {regions: {a: 101}}\n", "constraints.regions", "weight 101 not in 1..100"},
		{"min reputation above", base + "constraints: {min_reputation: 1001}\n", "constraints.min_reputation", "exceeds 1000"},
		{"replicas zero", base + "replicas: 0\n", "replicas", "1..16"},
		{"replicas absurd", base + "replicas: 1000\n", "replicas", "1..16"},
		{"replicas of a non-deterministic job without the statement", base + "executor: exec\nreplicas: 3\n", "replicas", "set accept_majority"},
		{"accept_majority on one replica", base + "accept_majority: true\n", "accept_majority", "replicas > 1"},
		{"env name", base + "env: {\"A=B\": x}\n", "env", "not a variable name"},
		{"two documents", base + "---\n" + base, "", "more than one"},
		{"too big", base + "name: " + strings.Repeat("x", MaxSpecSize) + "\n", "", "limit"},
		{"long name", base + "name: " + strings.Repeat("x", 65) + "\n", "name", "at most"},
		{"garbage json", `{"payload": "a", "max_price": 1,,}`, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseJobSpec([]byte(c.spec))
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T), want *SpecError", err, err)
			}
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("%v does not match ErrBadRequest", err)
			}
			if se.Field != c.field || !strings.Contains(se.Msg, c.msg) {
				t.Fatalf("err = field %q msg %q; want field %q containing %q", se.Field, se.Msg, c.field, c.msg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("message is not one line: %q", err)
			}
		})
	}
}

// randomSpec draws a valid spec.
func randomSpec(r *rand.Rand) JobSpec {
	execs := []string{ExecutorWASM, ExecutorDocker, ExecutorExec}
	places := []string{PlaceCheapest, PlaceLeastLoaded, PlaceNearest, PlaceBalanced}
	s := JobSpec{
		Name:       fmt.Sprintf("job-%d", r.IntN(1000)),
		Executor:   execs[r.IntN(3)],
		Resources:  Resources{CPU: 1 + r.Uint64N(MaxCPU), Memory: 1 + r.Uint64N(MaxMemoryMiB), Disk: r.Uint64N(MaxDiskMiB)},
		MaxPrice:   1 + r.Uint64N(1<<40),
		Timeout:    Duration{time.Duration(1+r.IntN(3600)) * time.Second},
		Deadline:   Duration{time.Duration(1+r.IntN(3600)) * time.Millisecond},
		Placement:  places[r.IntN(4)],
		Replicas:   1 + r.IntN(MaxReplicas),
		Visibility: []string{VisibilityPrivate, VisibilityPublic}[r.IntN(2)],
	}
	s.AcceptMajority = s.Replicas > 1 && s.Executor != ExecutorWASM
	if s.Executor == ExecutorDocker {
		s.Image = "img:" + fmt.Sprint(r.IntN(9))
	} else {
		s.Payload = "p.bin"
	}
	for i := r.IntN(4); i > 0; i-- {
		s.Args = append(s.Args, fmt.Sprintf("arg %d \"q\"", r.IntN(100)))
	}
	if r.IntN(2) == 0 {
		s.Env = map[string]string{"K": "v: x", "EMPTY": ""}
	}
	switch r.IntN(3) {
	case 0:
		s.Constraints = Constraints{Region: "eu-west", Labels: map[string]string{"arch": "x86"}, Executors: []string{s.Executor}}
	case 1:
		s.Constraints = Constraints{Regions: map[string]uint32{"eu-west": uint32(1 + r.IntN(100)), "us-east": 1},
			MinReputation: uint32(r.IntN(MaxReputation + 1))}
	}
	return s
}

// A valid spec survives JSON (the wire form) unchanged, and ParseJobSpec of
// that JSON gives it back: the client and the server agree on every field.
func TestJobSpecJSONRoundTrip(t *testing.T) {
	seed := time.Now().UnixNano()
	r := rand.New(rand.NewPCG(uint64(seed), 1))
	for i := range 300 {
		s := randomSpec(r)
		if err := s.Validate(); err != nil {
			t.Fatalf("seed %d case %d: random spec invalid: %v", seed, i, err)
		}
		data, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseJobSpec(data)
		if err != nil {
			t.Fatalf("seed %d case %d: ParseJobSpec(%s): %v", seed, i, data, err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Fatalf("seed %d case %d: round trip\n got  %+v\n want %+v", seed, i, got, s)
		}
	}
}

// minimalModule is the smallest WASI command: one function, exported as
// _start, that returns (apitest.WasmModule builds the same with a custom
// section; this package cannot import it).
var minimalModule = []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
	1, 4, 1, 0x60, 0, 0, // type: func () -> ()
	3, 2, 1, 0, // function: type 0
	7, 10, 1, 6, '_', 's', 't', 'a', 'r', 't', 0, 0, // export _start
	10, 4, 1, 2, 0, 0x0b} // code

func TestCheckPayload(t *testing.T) {
	wasm := minimalModule
	cases := []struct {
		exec    string
		payload []byte
		ok      bool
	}{
		{ExecutorWASM, wasm, true},
		{ExecutorWASM, nil, false},
		{ExecutorWASM, []byte("#!/bin/sh\necho hi\n"), false},
		{ExecutorWASM, wasm[:7], false},
		{ExecutorWASM, wasm[:len(wasm)-1], false},
		{ExecutorExec, []byte("#!/bin/sh\n"), true},
		{ExecutorExec, nil, false},
		{ExecutorDocker, nil, true},
		{ExecutorDocker, wasm, false},
		{"jvm", wasm, false},
	}
	for _, c := range cases {
		err := CheckPayload(c.exec, c.payload)
		if (err == nil) != c.ok {
			t.Errorf("CheckPayload(%s, %q) = %v, want ok=%v", c.exec, c.payload, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrBadRequest) {
			t.Errorf("CheckPayload error %v does not match ErrBadRequest", err)
		}
	}
}

// wasmSections assembles a module from (id, body) pairs after the header.
func wasmSections(secs ...[]byte) []byte {
	b := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	for _, s := range secs {
		b = append(b, s[0], byte(len(s)-1)) // bodies here are < 128 bytes
		b = append(b, s[1:]...)
	}
	return b
}

func TestCheckWasmModule(t *testing.T) {
	typ := []byte{1, 1, 0x60, 0, 0}
	fn := []byte{3, 1, 0}
	start := []byte{7, 1, 6, '_', 's', 't', 'a', 'r', 't', 0, 0}
	code := []byte{10, 1, 2, 0, 0x0b}
	wasiImport := []byte{2, 1, 22, 'w', 'a', 's', 'i', '_', 's', 'n', 'a', 'p', 's', 'h', 'o', 't', '_', 'p', 'r', 'e', 'v', 'i', 'e', 'w', '1',
		9, 'p', 'r', 'o', 'c', '_', 'e', 'x', 'i', 't', 0, 0}
	envImport := []byte{2, 1, 3, 'e', 'n', 'v', 3, 'f', 'o', 'o', 0, 0}
	memImport := []byte{2, 1, 22, 'w', 'a', 's', 'i', '_', 's', 'n', 'a', 'p', 's', 'h', 'o', 't', '_', 'p', 'r', 'e', 'v', 'i', 'e', 'w', '1',
		3, 'm', 'e', 'm', 2, 1, 1, 2} // memory, limits min 1 max 2
	custom := []byte{0, 4, 'n', 'a', 'm', 'e', 1, 2, 3}
	cases := []struct {
		name   string
		module []byte
		want   string // "" accepts; else a part of the error
	}{
		{"the minimal command", wasmSections(typ, fn, start, code), ""},
		{"a WASI import", wasmSections(typ, wasiImport, fn, start, code), ""},
		{"a memory import (WASI provides none)", wasmSections(typ, memImport, fn, start, code), "provides only functions"},
		{"a table without a maximum", wasmSections(typ, fn, []byte{4, 1, 0x70, 0, 10}, start, code), ""},
		{"a table of 2^31 entries, 16 GiB of provider memory", wasmSections(typ, fn, []byte{4, 1, 0x70, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x08}, start, code), "16384 MiB of provider memory"},
		{"a table one entry over the bound", wasmSections(typ, fn, []byte{4, 1, 0x70, 0, 0x81, 0x80, 0x40}, start, code), "more than the 1048576 allowed"},
		{"a table at the bound", wasmSections(typ, fn, []byte{4, 1, 0x70, 1, 0, 0x80, 0x80, 0x40}, start, code), ""},
		{"a 64-bit memory", wasmSections(typ, fn, []byte{5, 1, 4, 1}, start, code), "64-bit"},
		{"a memory at wasm32's bound", wasmSections(typ, fn, []byte{5, 1, 0, 0x80, 0x80, 0x04}, start, code), ""},
		{"a memory past wasm32's bound", wasmSections(typ, fn, []byte{5, 1, 0, 0x81, 0x80, 0x04}, start, code), "at most 65536 pages"},
		{"custom sections anywhere", wasmSections(custom, typ, custom, fn, start, custom, code, custom), ""},
		{"an import from another host", wasmSections(typ, envImport, fn, start, code), `"env"."foo"`},
		{"no _start", wasmSections(typ, fn, code), "_start"},
		{"_start that is not a function", wasmSections(typ, fn, []byte{7, 1, 6, '_', 's', 't', 'a', 'r', 't', 2, 0}, code), "_start"},
		{"sections out of order", wasmSections(typ, start, fn, code), "out of order"},
		{"a repeated section", wasmSections(typ, fn, fn, start, code), "out of order"},
		{"an unknown section", wasmSections(typ, []byte{14, 0}, fn, start, code), "unknown section"},
		{"a section past the end", append(wasmSections(typ, fn, start), 10, 9, 1), "past the end"},
		{"an overlong integer", append(wasmSections(typ), 3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01), "integer too large"},
		{"export entries short of their count", wasmSections(typ, fn, []byte{7, 2, 6, '_', 's', 't', 'a', 'r', 't', 0, 0}, code), "truncated"},
		{"bytes left over in the export section", wasmSections(typ, fn, append(slices.Clone(start), 9), code), "left over"},
		{"a name past its section", wasmSections(typ, []byte{2, 1, 40, 'w'}, fn, start, code), "truncated"},
		{"no header", []byte("\x7fELF"), "header"},
	}
	for _, c := range cases {
		err := CheckWasmModule(c.module)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// FuzzCheckWasmModule: any bytes give nil or an error, never a panic, and
// an accepted module keeps being accepted with a custom section appended.
func FuzzCheckWasmModule(f *testing.F) {
	f.Add(minimalModule)
	f.Add(wasmSections([]byte{1, 1, 0x60, 0, 0}, []byte{2, 1, 3, 'e', 'n', 'v', 3, 'f', 'o', 'o', 0, 0}))
	f.Add([]byte{0, 'a', 's', 'm', 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		if CheckWasmModule(b) != nil {
			return
		}
		if err := CheckWasmModule(append(slices.Clone(b), 0, 2, 1, 'x')); err != nil {
			t.Fatalf("accepted module refused with a custom section appended: %v", err)
		}
	})
}

// FuzzParseJobSpec: any input gives a valid spec or a *SpecError, never a
// panic; an accepted spec validates and survives a JSON round trip.
func FuzzParseJobSpec(f *testing.F) {
	f.Add([]byte(helloSpec))
	f.Add([]byte("payload: a\nmax_price: 1\n"))
	f.Add([]byte(`{"executor":"docker","image":"x","max_price":3,"resources":{"cpu":1,"memory":1}}`))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("max_price: -1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseJobSpec(data)
		if err != nil {
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is %T, not *SpecError", err, err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted spec does not validate: %v", err)
		}
		j, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseJobSpec(j)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", j, err)
		}
		if !reflect.DeepEqual(normalize(back), normalize(s)) {
			t.Fatalf("round trip changed the spec:\n%+v\n%+v", back, s)
		}
	})
}

// normalize makes empty and nil collections equal (JSON omits empty ones).
func normalize(s JobSpec) JobSpec {
	if len(s.Args) == 0 {
		s.Args = nil
	}
	if len(s.Env) == 0 {
		s.Env = nil
	}
	if len(s.Constraints.Labels) == 0 {
		s.Constraints.Labels = nil
	}
	if len(s.Constraints.Executors) == 0 {
		s.Constraints.Executors = nil
	}
	return s
}

func BenchmarkParseJobSpec(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseJobSpec([]byte(helloSpec)); err != nil {
			b.Fatal(err)
		}
	}
}

// A docker job may carry its image as a `docker save` tarball, named by
// the image's ID; the payload must be a tar archive.
func TestDockerImageTarballPayload(t *testing.T) {
	id := "sha256:" + strings.Repeat("ab", 32)
	s, err := ParseJobSpec([]byte("executor: docker\nimage: " + id + "\npayload: hello.tar\nmax_price: 10\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Image != id || s.Payload != "hello.tar" {
		t.Fatalf("spec %+v", s)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o644, Size: 2}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte("[]"))
	tw.Close()
	if err := CheckPayload(ExecutorDocker, buf.Bytes()); err != nil {
		t.Fatalf("a tar archive: %v", err)
	}
	bad := bytes.Clone(buf.Bytes())
	bad[0] ^= 1
	for _, p := range [][]byte{bad, []byte("not a tar"), buf.Bytes()[:511]} {
		if err := CheckPayload(ExecutorDocker, p); err == nil {
			t.Fatalf("%.20q accepted as an image tarball", p)
		}
	}
	for _, ref := range []string{"sha256:" + strings.Repeat("AB", 32), "sha256:" + strings.Repeat("a", 63), "alpine@sha256:" + strings.Repeat("a", 64)} {
		if IsImageID(ref) {
			t.Fatalf("%q taken for an image ID", ref)
		}
	}
}
