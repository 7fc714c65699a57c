package api

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bourse-net/bourse/market"
)

// Executors a job may name: the market's (defined once, in market/).
const (
	ExecutorWASM   = market.ExecWASM
	ExecutorDocker = market.ExecDocker
	ExecutorExec   = market.ExecExec
)

// Placement preferences a job may name: the market's (defined once, in
// market/).
const (
	PlaceCheapest    = market.PreferCheapest
	PlaceLeastLoaded = market.PreferLeastLoaded
	PlaceNearest     = market.PreferNearest
	PlaceBalanced    = market.PreferBalanced
)

// Who may fetch a job's payload, manifest and result (JobSpec.Visibility).
const (
	// VisibilityPrivate: only the matched provider fetches the payload and
	// manifest, only the client the result; every other peer is told
	// "not found", though the hashes are public (in the gossiped bid and
	// on chain). The default.
	VisibilityPrivate = "private"
	// VisibilityPublic: any peer may fetch them by hash.
	VisibilityPublic = "public"
)

// Bounds a job spec is held to. They reject absurd requests early, with a
// message, instead of letting them reach the market. Those a bid shares
// are the market's own bounds (defined once, in market/).
const (
	MaxSpecSize  = 1 << 20 // bytes of YAML or JSON
	MaxNameLen   = 64
	MaxImageLen  = market.MaxImageLen
	MaxArgs      = market.MaxArgs
	MaxEnv       = market.MaxArgs     // a bid bounds its env entries as its args
	MaxArgBytes  = market.MaxArgBytes // args and env together
	MaxCPU       = market.MaxCPU      // millicores
	MaxMemoryMiB = market.MaxMemMiB
	MaxDiskMiB   = market.MaxDiskMiB
	MaxGPUs      = market.MaxGPUs
	MaxReplicas  = 16
	MaxTimeout   = 24 * time.Hour
	MaxDeadline  = 24 * time.Hour
	MaxLabels    = market.MaxLabels
	MaxRegionLen = market.MaxRegionLen
	// MaxRegions bounds constraints.regions; MaxRegionWeight a weight.
	MaxRegions      = market.MaxRegions
	MaxRegionWeight = market.MaxRegionWeight
	MaxReputation   = market.MaxReputation
	DefaultTimeout  = time.Minute
	// DefaultDeadline is the match-by deadline when a spec gives none.
	DefaultDeadline = time.Minute
)

// DefaultResources are used when a spec has no resources section.
var DefaultResources = Resources{CPU: 1000, Memory: 64, Disk: 16}

// JobSpec describes a job. It is read from YAML or JSON by ParseJobSpec,
// or built from CLI flags and checked with Validate. On the wire (JSON) it
// has the same field names as the file.
type JobSpec struct {
	Name     string `json:"name" yaml:"name"`
	Executor string `json:"executor" yaml:"executor"`
	// Payload is a file path relative to the spec (wasm, exec). When a spec
	// travels to the daemon it is only a name; the bytes travel beside it.
	Payload string `json:"payload,omitempty" yaml:"payload"`
	// Image is a container image reference (docker).
	Image       string            `json:"image,omitempty" yaml:"image"`
	Args        []string          `json:"args,omitempty" yaml:"args"`
	Env         map[string]string `json:"env,omitempty" yaml:"env"`
	Resources   Resources         `json:"resources" yaml:"resources"`
	MaxPrice    uint64            `json:"max_price" yaml:"max_price"`
	Timeout     Duration          `json:"timeout" yaml:"timeout"`
	Deadline    Duration          `json:"deadline" yaml:"deadline"`
	Placement   string            `json:"placement" yaml:"placement"`
	Constraints Constraints       `json:"constraints" yaml:"constraints"`
	// Replicas runs the job on this many distinct providers (k-of-n):
	// each replica escrows MaxPrice; replicas that agree are paid; a WASM
	// job's disagreement goes to referees, who slash the wrong; another
	// executor's is settled by majority (the outvoted unpaid, not
	// slashed). See Job.Replicas.
	Replicas int `json:"replicas" yaml:"replicas"`
	// AcceptMajority must be set for Replicas > 1 of a docker or exec
	// job: such runs are not deterministic, nobody can re-execute them,
	// and an honest replica that disagrees with the majority goes unpaid.
	AcceptMajority bool `json:"accept_majority,omitempty" yaml:"accept_majority"`
	// Visibility is private (the default) or public: see VisibilityPrivate.
	Visibility string `json:"visibility,omitempty" yaml:"visibility"`
	// PayloadSHA256 names, by its sha256 (64 hex digits), a payload the
	// daemon already holds, so a module submitted again is not uploaded
	// again. Set by clients (Client.SubmitJobBytes), not in spec files.
	PayloadSHA256 string `json:"payload_sha256,omitempty" yaml:"payload_sha256,omitempty"`
}

// Constraints restrict which offers may take a job.
type Constraints struct {
	// Region: the one region the job may run in. Regions instead names
	// several, each with a weight (1..100): the job may run in any of
	// them, and the balanced placement prefers the heavier ones (nearest,
	// without measured round trips, tries them heaviest first).
	Region  string            `json:"region,omitempty" yaml:"region"`
	Regions map[string]uint32 `json:"regions,omitempty" yaml:"regions"`
	Labels  map[string]string `json:"labels,omitempty" yaml:"labels"`
	// Executors, if set, must include the job's executor: a spec written
	// for several executors says which it accepts.
	Executors []string `json:"executors,omitempty" yaml:"executors"`
	// MinReputation (0..1000, per mille) refuses providers with less.
	MinReputation uint32 `json:"min_reputation,omitempty" yaml:"min_reputation"`
}

// Duration is a time.Duration written as "30s" in YAML and JSON.
type Duration struct{ time.Duration }

// ParseDuration parses "30s"-style text into a Duration.
func ParseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return Duration{}, fmt.Errorf("%q is not a duration (write it like 30s, 5m or 1h)", s)
	}
	return Duration{d}, nil
}

func (d Duration) String() string { return d.Duration.String() }

// MarshalText writes "30s"; zero is "0s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// UnmarshalText reads "30s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// UnmarshalYAML reads "30s" and refuses a bare number (which unit?).
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!int" || n.Tag == "!!float" {
		return fmt.Errorf("line %d: %q is not a duration (write it like 30s, 5m or 1h)", n.Line, n.Value)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}

// rawSpec mirrors JobSpec with signed numbers so that a negative value gets
// its own message instead of a type error.
type rawSpec struct {
	Name        string            `yaml:"name"`
	Executor    string            `yaml:"executor"`
	Payload     string            `yaml:"payload"`
	Image       string            `yaml:"image"`
	Args        []string          `yaml:"args"`
	Env         map[string]string `yaml:"env"`
	Resources   *rawResources     `yaml:"resources"`
	MaxPrice    *int64            `yaml:"max_price"`
	Timeout     Duration          `yaml:"timeout"`
	Deadline    Duration          `yaml:"deadline"`
	Placement   string            `yaml:"placement"`
	Constraints Constraints       `yaml:"constraints"`
	Replicas    *int64            `yaml:"replicas"`
	Visibility  string            `yaml:"visibility"`
	// AcceptMajority: see JobSpec.
	AcceptMajority bool `yaml:"accept_majority"`
	// PayloadSHA256 names a payload the daemon holds (see JobSpec).
	PayloadSHA256 string `yaml:"payload_sha256"`
}

type rawResources struct {
	CPU    int64 `yaml:"cpu"`
	Memory int64 `yaml:"memory"`
	Disk   int64 `yaml:"disk"`
	GPUs   int64 `yaml:"gpus"`
}

// SpecError is a job spec that cannot be used; Field names the culprit
// ("resources.cpu"), or is empty for a syntax error.
type SpecError struct {
	Field string
	Msg   string
}

func (e *SpecError) Error() string {
	if e.Field == "" {
		return "job spec: " + e.Msg
	}
	return fmt.Sprintf("job spec %s: %s", e.Field, e.Msg)
}

// Is makes a SpecError match ErrBadRequest: the API answers it with 400.
func (e *SpecError) Is(t error) bool { return t == ErrBadRequest }

func specErr(field, format string, args ...any) error {
	return &SpecError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ParseJobSpec reads a job spec in YAML or JSON (JSON is YAML), fills the
// defaults (executor wasm, DefaultResources, timeout and deadline one
// minute, placement cheapest, one replica) and validates it. Unknown fields,
// several documents, negative or absurd numbers and bad durations are
// errors of type *SpecError.
func ParseJobSpec(data []byte) (JobSpec, error) {
	if len(data) > MaxSpecSize {
		return JobSpec{}, specErr("", "%d bytes exceed the %d byte limit", len(data), MaxSpecSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return JobSpec{}, specErr("", "empty")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var raw rawSpec
	if err := dec.Decode(&raw); err != nil {
		return JobSpec{}, specErr("", "%s", yamlMessage(err))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return JobSpec{}, specErr("", "more than one YAML document")
	}
	s := JobSpec{
		Name: raw.Name, Executor: raw.Executor, Payload: raw.Payload, Image: raw.Image,
		Args: raw.Args, Env: raw.Env, Timeout: raw.Timeout, Deadline: raw.Deadline,
		Placement: raw.Placement, Constraints: raw.Constraints, PayloadSHA256: raw.PayloadSHA256,
		Visibility: raw.Visibility, AcceptMajority: raw.AcceptMajority,
	}
	if r := raw.Resources; r != nil {
		for _, f := range []struct {
			name string
			v    int64
		}{{"cpu", r.CPU}, {"memory", r.Memory}, {"disk", r.Disk}, {"gpus", r.GPUs}} {
			if f.v < 0 {
				return JobSpec{}, specErr("resources."+f.name, "%d is negative", f.v)
			}
		}
		s.Resources = Resources{CPU: uint64(r.CPU), Memory: uint64(r.Memory), Disk: uint64(r.Disk), GPUs: uint64(r.GPUs)}
	}
	if raw.MaxPrice != nil {
		if *raw.MaxPrice < 0 {
			return JobSpec{}, specErr("max_price", "%d is negative", *raw.MaxPrice)
		}
		s.MaxPrice = uint64(*raw.MaxPrice)
	}
	if raw.Replicas != nil {
		if *raw.Replicas < 1 || *raw.Replicas > MaxReplicas {
			return JobSpec{}, specErr("replicas", "%d: must be in 1..%d", *raw.Replicas, MaxReplicas)
		}
		s.Replicas = int(*raw.Replicas)
	}
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return JobSpec{}, err
	}
	return s, nil
}

// yamlMessage shortens yaml.v3's errors to one line.
func yamlMessage(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	return strings.TrimPrefix(strings.ReplaceAll(err.Error(), "\n", " "), "yaml: ")
}

// WithDefaults returns s with every unset field that has a default filled
// in. It does not validate.
func (s JobSpec) WithDefaults() JobSpec {
	if s.Executor == "" {
		s.Executor = ExecutorWASM
	}
	if s.Resources == (Resources{}) {
		s.Resources = DefaultResources
	}
	if s.Timeout.Duration == 0 {
		s.Timeout.Duration = DefaultTimeout
	}
	if s.Deadline.Duration == 0 {
		s.Deadline.Duration = DefaultDeadline
	}
	if s.Placement == "" {
		s.Placement = PlaceCheapest
	}
	if s.Replicas == 0 {
		s.Replicas = 1
	}
	if s.Visibility == "" {
		s.Visibility = VisibilityPrivate
	}
	return s
}

func validExecutor(e string) bool {
	return e == ExecutorWASM || e == ExecutorDocker || e == ExecutorExec
}

// Validate checks a complete spec (after WithDefaults) and returns a
// *SpecError naming the first bad field.
func (s JobSpec) Validate() error {
	if h := s.PayloadSHA256; h != "" {
		if b, err := hex.DecodeString(h); err != nil || len(b) != 32 || strings.ToLower(h) != h {
			return specErr("payload_sha256", "must be 64 lowercase hex digits")
		}
	}
	if len(s.Name) > MaxNameLen || strings.ContainsAny(s.Name, "\n\r\t") {
		return specErr("name", "must be at most %d characters on one line", MaxNameLen)
	}
	if !validExecutor(s.Executor) {
		return specErr("executor", "unknown executor %q (want wasm, docker or exec)", s.Executor)
	}
	if s.Visibility != VisibilityPrivate && s.Visibility != VisibilityPublic {
		return specErr("visibility", "%.20q: want private (only the matched provider and the client fetch the job's blobs) or public", s.Visibility)
	}
	switch s.Executor {
	case ExecutorDocker:
		if s.Image == "" {
			return specErr("image", "a docker job needs an image reference")
		}
		if s.Payload != "" && !IsImageID(s.Image) {
			return specErr("image", "a docker job with an image tarball as its payload names the image by its ID (sha256:<64 hex digits>, from `docker inspect --format '{{.Id}}'`), not %.80q", s.Image)
		}
		if len(s.Image) > MaxImageLen || strings.ContainsAny(s.Image, " \t\n") {
			return specErr("image", "%.40q is not an image reference", s.Image)
		}
	default:
		if s.Payload == "" {
			return specErr("payload", "missing: a %s job needs a payload file (path relative to the spec)", s.Executor)
		}
		if s.Image != "" {
			return specErr("image", "only docker jobs take an image")
		}
	}
	if len(s.Args) > MaxArgs {
		return specErr("args", "%d args exceed %d", len(s.Args), MaxArgs)
	}
	if len(s.Env) > MaxEnv {
		return specErr("env", "%d variables exceed %d", len(s.Env), MaxEnv)
	}
	n := 0
	for _, a := range s.Args {
		n += len(a)
	}
	for k, v := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return specErr("env", "%q is not a variable name", k)
		}
		n += len(k) + len(v)
	}
	if n > MaxArgBytes {
		return specErr("args", "args and env take %d bytes, more than %d", n, MaxArgBytes)
	}
	r := s.Resources
	switch {
	case r.CPU == 0:
		return specErr("resources.cpu", "must be positive (millicores; 1000 is one core)")
	case r.CPU > MaxCPU:
		return specErr("resources.cpu", "%d millicores is absurd (limit %d)", r.CPU, MaxCPU)
	case r.Memory == 0:
		return specErr("resources.memory", "must be positive (MiB)")
	case r.Memory > MaxMemoryMiB:
		return specErr("resources.memory", "%d MiB is absurd (limit %d)", r.Memory, MaxMemoryMiB)
	case r.Disk > MaxDiskMiB:
		return specErr("resources.disk", "%d MiB is absurd (limit %d)", r.Disk, MaxDiskMiB)
	case r.GPUs > MaxGPUs:
		return specErr("resources.gpus", "%d is absurd (limit %d)", r.GPUs, MaxGPUs)
	}
	if s.MaxPrice == 0 {
		return specErr("max_price", "missing: the most you will pay, in base units")
	}
	if s.MaxPrice > 1<<62 {
		return specErr("max_price", "%d is absurd", s.MaxPrice)
	}
	if d := s.Timeout.Duration; d <= 0 || d > MaxTimeout {
		return specErr("timeout", "%s: must be positive and at most %s", d, MaxTimeout)
	}
	if d := s.Deadline.Duration; d <= 0 || d > MaxDeadline {
		return specErr("deadline", "%s: must be positive and at most %s", d, MaxDeadline)
	}
	switch s.Placement {
	case PlaceCheapest, PlaceLeastLoaded, PlaceNearest, PlaceBalanced:
	default:
		return specErr("placement", "unknown placement %q (want cheapest, least-loaded, nearest or balanced)", s.Placement)
	}
	c := s.Constraints
	if len(c.Region) > MaxRegionLen {
		return specErr("constraints.region", "longer than %d characters", MaxRegionLen)
	}
	if len(c.Labels) > MaxLabels {
		return specErr("constraints.labels", "%d labels exceed %d", len(c.Labels), MaxLabels)
	}
	for k := range c.Labels {
		if k == "" || strings.ContainsAny(k, "= \t\n") {
			return specErr("constraints.labels", "%q is not a label key", k)
		}
	}
	for _, e := range c.Executors {
		if !validExecutor(e) {
			return specErr("constraints.executors", "unknown executor %q (want wasm, docker or exec)", e)
		}
	}
	if len(c.Executors) > 0 && !slices.Contains(c.Executors, s.Executor) {
		return specErr("constraints.executors", "%v does not include the job's executor %q", c.Executors, s.Executor)
	}
	if c.Region != "" && len(c.Regions) > 0 {
		return specErr("constraints.regions", "give region or regions, not both")
	}
	if len(c.Regions) > MaxRegions {
		return specErr("constraints.regions", "%d regions exceed %d", len(c.Regions), MaxRegions)
	}
	for name, w := range c.Regions {
		switch {
		case name == "" || len(name) > MaxRegionLen:
			return specErr("constraints.regions", "region %q: must be 1..%d characters", name, MaxRegionLen)
		case w == 0 || w > MaxRegionWeight:
			return specErr("constraints.regions", "region %q: weight %d not in 1..%d", name, w, MaxRegionWeight)
		}
	}
	if c.MinReputation > MaxReputation {
		return specErr("constraints.min_reputation", "%d exceeds %d (reputation is per mille)", c.MinReputation, MaxReputation)
	}
	if s.Resources.GPUs > 0 {
		return specErr("resources.gpus", "%d requested, but no provider can offer GPUs yet (offers do not declare them and the docker executor does not pass them through): set gpus to 0", s.Resources.GPUs)
	}
	if s.Replicas < 1 || s.Replicas > MaxReplicas {
		return specErr("replicas", "%d: must be in 1..%d", s.Replicas, MaxReplicas)
	}
	if s.AcceptMajority && s.Replicas == 1 {
		return specErr("accept_majority", "means something only with replicas > 1")
	}
	if s.AcceptMajority && s.Executor == ExecutorWASM {
		return specErr("accept_majority", "wasm runs are deterministic and their disagreements go to referees; accept_majority is for docker and exec")
	}
	if s.Replicas > 1 && s.Executor != ExecutorWASM && !s.AcceptMajority {
		return specErr("replicas", "%d replicas of a %s job: its runs are not deterministic, so honest replicas may disagree and the outvoted go unpaid; set accept_majority: true to accept majority-by-hash anyway, or use wasm", s.Replicas, s.Executor)
	}
	return nil
}

// CheckPayload does the cheap checks a payload must pass for its executor:
// present, and for wasm a well-formed WASI command module (CheckWasmModule).
// The provider's compiler validates the function bodies.
func CheckPayload(executor string, payload []byte) error {
	switch executor {
	case ExecutorDocker:
		// Nothing, or an image tarball (`docker save`); the provider checks
		// that it holds exactly the image the job names by ID.
		if len(payload) != 0 && !looksLikeTar(payload) {
			return specErr("payload", "a docker job's payload is an image tarball (docker save), and this is not a tar archive")
		}
		return nil
	case ExecutorWASM:
		if len(payload) == 0 {
			return specErr("payload", "empty: a wasm job needs a WebAssembly module")
		}
		if err := CheckWasmModule(payload); err != nil {
			return specErr("payload", "%v", err)
		}
	case ExecutorExec:
		if len(payload) == 0 {
			return specErr("payload", "empty: an exec job needs an executable")
		}
	default:
		return specErr("executor", "unknown executor %q (want wasm, docker or exec)", executor)
	}
	return nil
}

// IsImageID reports whether ref is a docker image ID: "sha256:" and 64
// lowercase hex digits.
func IsImageID(ref string) bool {
	h, ok := strings.CutPrefix(ref, "sha256:")
	if !ok || len(h) != 64 || strings.ToLower(h) != h {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// looksLikeTar reports whether b starts with a tar header: its checksum
// (bytes 148..155, octal) matches the header's bytes.
func looksLikeTar(b []byte) bool {
	if len(b) < 512 {
		return false
	}
	h := b[:512]
	var sum int64
	for i, c := range h {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	field := strings.TrimRight(strings.TrimSpace(string(bytes.TrimRight(h[148:156], "\x00 "))), "\x00")
	want, err := strconv.ParseInt(field, 8, 64)
	return err == nil && want == sum
}

// SortedKeys returns m's keys in order, for stable output.
func SortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
