package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// Services (issue 19): a long-running WASM handler deployed as replicas,
// each a lease on chain, reached through any node's gateway.

// ServiceSpec describes a service. It is read from YAML or JSON by
// ParseServiceSpec; on the wire (JSON) it has the file's field names.
//
//	kind: service
//	name: hello
//	payload: hello.wasm
//	replicas: {min: 1, max: 3, initial: 3}
//	resources: {cpu: 500, memory: 64}
//	price_per_period: 100     # the most one replica may cost per period
//	period: 5s
//	budget: 20000             # or duration: 10m (budget for initial replicas)
type ServiceSpec struct {
	Kind     string `json:"kind" yaml:"kind"`
	Name     string `json:"name" yaml:"name"`
	Executor string `json:"executor" yaml:"executor"`
	Payload  string `json:"payload,omitempty" yaml:"payload"`
	// Image is a docker service's image ID (sha256:<64 hex>); its payload
	// is the image's `docker save` tarball. Port is the one port its
	// container serves HTTP on (default 8080; the container gets PORT).
	Image    string            `json:"image,omitempty" yaml:"image"`
	Port     uint16            `json:"port,omitempty" yaml:"port"`
	Args     []string          `json:"args,omitempty" yaml:"args"`
	Env      map[string]string `json:"env,omitempty" yaml:"env"`
	Replicas ReplicaBounds     `json:"replicas" yaml:"replicas"`
	// Resources are per replica.
	Resources      Resources   `json:"resources" yaml:"resources"`
	PricePerPeriod uint64      `json:"price_per_period" yaml:"price_per_period"`
	Period         Duration    `json:"period" yaml:"period"`
	Budget         uint64      `json:"budget,omitempty" yaml:"budget"`
	Duration       Duration    `json:"duration,omitempty" yaml:"duration"`
	Placement      string      `json:"placement" yaml:"placement"`
	Constraints    Constraints `json:"constraints" yaml:"constraints"`
	// Elastic false keeps the replica count where deploy and scale put it.
	Elastic *bool `json:"elastic,omitempty" yaml:"elastic"`
	// PayloadSHA256: as in JobSpec.
	PayloadSHA256 string `json:"payload_sha256,omitempty" yaml:"payload_sha256,omitempty"`
}

// ReplicaBounds are a service's replica bounds and its first count.
type ReplicaBounds struct {
	Min     uint32 `json:"min" yaml:"min"`
	Max     uint32 `json:"max" yaml:"max"`
	Initial uint32 `json:"initial,omitempty" yaml:"initial"`
}

// Service defaults and bounds.
const (
	DefaultServicePeriod = 10 * time.Second
	DefaultServicePort   = 8080 // a docker service's container port
	MaxServiceReplicas   = 16   // chain.MaxServiceReplicas
	MinServicePeriod     = time.Second
	MaxServicePeriod     = 24 * time.Hour
)

// ParseServiceSpec reads a service spec in YAML or JSON, fills the
// defaults (executor wasm, DefaultResources without disk, min 1, max =
// max(min, initial), initial = min, period DefaultServicePeriod,
// placement cheapest) and validates it. Errors are *SpecError.
func ParseServiceSpec(data []byte) (ServiceSpec, error) {
	if len(data) > MaxSpecSize {
		return ServiceSpec{}, specErr("", "%d bytes exceed the %d byte limit", len(data), MaxSpecSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return ServiceSpec{}, specErr("", "empty")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s ServiceSpec
	if err := dec.Decode(&s); err != nil {
		return ServiceSpec{}, specErr("", "%s", yamlMessage(err))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return ServiceSpec{}, specErr("", "more than one YAML document")
	}
	s = s.WithDefaults()
	return s, s.Validate()
}

// WithDefaults fills what the spec leaves out.
func (s ServiceSpec) WithDefaults() ServiceSpec {
	if s.Kind == "" {
		s.Kind = "service"
	}
	if s.Executor == "" {
		s.Executor = ExecutorWASM
	}
	if s.Resources == (Resources{}) {
		s.Resources = Resources{CPU: DefaultResources.CPU, Memory: DefaultResources.Memory}
	}
	if s.Replicas.Min == 0 {
		s.Replicas.Min = 1
	}
	if s.Replicas.Initial == 0 {
		s.Replicas.Initial = s.Replicas.Min
	}
	if s.Replicas.Max == 0 {
		s.Replicas.Max = max(s.Replicas.Min, s.Replicas.Initial)
	}
	if s.Period.Duration == 0 {
		s.Period = Duration{DefaultServicePeriod}
	}
	if s.Placement == "" {
		s.Placement = PlaceCheapest
	}
	if s.Executor == ExecutorDocker && s.Port == 0 {
		s.Port = DefaultServicePort
	}
	return s
}

// Validate checks the spec as the chain will (bounds, names) so a mistake
// is reported before anything is signed.
func (s ServiceSpec) Validate() error {
	switch {
	case s.Kind != "service":
		return specErr("kind", "%q: a service spec says kind: service", s.Kind)
	case s.Name == "" || len(s.Name) > 63:
		return specErr("name", "%q: 1..63 lowercase letters, digits and inner hyphens", s.Name)
	case s.Executor != ExecutorWASM && s.Executor != ExecutorDocker:
		return specErr("executor", "%q: services run wasm or docker", s.Executor)
	case s.Executor == ExecutorDocker && !IsImageID(s.Image):
		return specErr("image", "%q: a docker service names its image by ID (sha256:<64 hex digits>: docker image inspect --format '{{.Id}}'), and sends the image's docker save tarball as its payload", s.Image)
	case s.Executor != ExecutorDocker && s.Image != "":
		return specErr("image", "only docker services have an image")
	case s.Executor != ExecutorDocker && s.Port != 0:
		return specErr("port", "only docker services have a port (a wasm service answers framed requests)")
	case s.Executor == ExecutorDocker && s.Env["PORT"] != "" && s.Env["PORT"] != strconv.Itoa(int(s.Port)):
		return specErr("env.PORT", "%q differs from port %d: set the port with port:", s.Env["PORT"], s.Port)
	case s.Replicas.Min < 1 || s.Replicas.Max < s.Replicas.Min || s.Replicas.Max > MaxServiceReplicas:
		return specErr("replicas", "min %d, max %d: want 1 ≤ min ≤ max ≤ %d", s.Replicas.Min, s.Replicas.Max, MaxServiceReplicas)
	case s.Replicas.Initial < s.Replicas.Min || s.Replicas.Initial > s.Replicas.Max:
		return specErr("replicas.initial", "%d not in %d..%d", s.Replicas.Initial, s.Replicas.Min, s.Replicas.Max)
	case s.Period.Duration < MinServicePeriod || s.Period.Duration > MaxServicePeriod:
		return specErr("period", "%s not in %s..%s", s.Period, MinServicePeriod, MaxServicePeriod)
	case s.PricePerPeriod == 0:
		return specErr("price_per_period", "must be positive: the most one replica may cost per period")
	case s.Budget == 0 && s.Duration.Duration <= 0:
		return specErr("budget", "give a budget (base units) or a duration to fund")
	case s.Budget != 0 && s.Duration.Duration != 0:
		return specErr("duration", "give a budget or a duration, not both")
	case s.Resources.Disk != 0 || s.Resources.GPUs != 0:
		return specErr("resources", "services get no disk and no GPUs")
	case s.Resources.CPU == 0 || s.Resources.Memory == 0:
		return specErr("resources", "cpu and memory must be positive")
	case s.Placement != PlaceCheapest && s.Placement != PlaceLeastLoaded && s.Placement != PlaceNearest && s.Placement != PlaceBalanced:
		return specErr("placement", "%q: cheapest, least-loaded, nearest or balanced", s.Placement)
	}
	for i, c := range []byte(s.Name) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' && i > 0 || c == '-' && i > 0 && i < len(s.Name)-1) {
			return specErr("name", "%q: 1..63 lowercase letters, digits and inner hyphens, starting with a letter", s.Name)
		}
	}
	if _, err := s.BudgetUnits(); err != nil {
		return err
	}
	return nil
}

// BudgetUnits is Budget, or what Duration costs for the initial replicas
// at PricePerPeriod (whole periods, rounded up).
func (s ServiceSpec) BudgetUnits() (uint64, error) {
	if s.Budget != 0 {
		return s.Budget, nil
	}
	periods := uint64((s.Duration.Duration + s.Period.Duration - 1) / s.Period.Duration)
	b := periods * uint64(s.Replicas.Initial) * s.PricePerPeriod
	if periods != 0 && b/periods/uint64(s.Replicas.Initial) != s.PricePerPeriod {
		return 0, specErr("duration", "%s of %d replicas at %d overflows", s.Duration, s.Replicas.Initial, s.PricePerPeriod)
	}
	return b, nil
}

// Service is a service as the API shows it.
type Service struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	Owner          string    `json:"owner"`
	Status         string    `json:"status"` // running, closed, exhausted
	Replicas       uint32    `json:"replicas"`
	Active         uint32    `json:"active"`
	Min            uint32    `json:"min"`
	Max            uint32    `json:"max"`
	PricePerPeriod uint64    `json:"price_per_period"`
	PeriodMs       int64     `json:"period_ms"`
	Budget         uint64    `json:"budget"`
	Paid           uint64    `json:"paid"`
	Refunded       uint64    `json:"refunded"`
	Failures       uint32    `json:"failures"`
	OpenedAt       time.Time `json:"opened_at"`
	Height         uint64    `json:"height"`
	ClosedAt       time.Time `json:"closed_at,omitzero"`
	// URL is this node's gateway address for the service, when it runs one.
	URL    string  `json:"url,omitempty"`
	Leases []Lease `json:"leases,omitempty"`
	// TxHash is set by deploy, scale and close: the transaction sent.
	TxHash string `json:"tx_hash,omitempty"`
}

// Lease is one replica's lease.
type Lease struct {
	ID          string    `json:"id"`
	Seq         uint32    `json:"seq"`
	Provider    string    `json:"provider"`
	PeerID      string    `json:"peer_id"`
	Region      string    `json:"region,omitempty"`
	Status      string    `json:"status"` // active, ending, settled
	EndReason   string    `json:"end_reason,omitempty"`
	Price       uint64    `json:"price"`
	Start       time.Time `json:"start"`
	Funded      uint64    `json:"funded_periods"`
	PaidPeriods uint64    `json:"paid_periods"`
	Paid        uint64    `json:"paid"`
	Refunded    uint64    `json:"refunded"`
	Requests    uint64    `json:"requests"`
	Bytes       uint64    `json:"bytes"`
}

// ServiceStats is the distribution of a service's requests across its
// replicas as this node's gateway saw them.
type ServiceStats struct {
	Service  string         `json:"service"`
	Requests uint64         `json:"requests"`
	Errors   uint64         `json:"errors"`
	Fairness float64        `json:"fairness"` // Jain's index over the active replicas' request counts, 1 = even
	Replicas []ReplicaStats `json:"replicas"`
}

// ReplicaStats is one replica's share and latency.
type ReplicaStats struct {
	Lease       string  `json:"lease"`
	Provider    string  `json:"provider"`
	Active      bool    `json:"active"`
	Requests    uint64  `json:"requests"`
	Errors      uint64  `json:"errors"`
	Bytes       uint64  `json:"bytes"`
	Share       float64 `json:"share"`
	Outstanding int     `json:"outstanding"`
	P50Ms       float64 `json:"p50_ms"`
	P90Ms       float64 `json:"p90_ms"`
	P99Ms       float64 `json:"p99_ms"`
}

// JainFairness is (Σx)²/(n·Σx²) over xs: 1 when all are equal, 1/n when
// one takes everything; 1 for no traffic.
func JainFairness(xs []uint64) float64 {
	var s, s2 float64
	for _, x := range xs {
		f := float64(x)
		s += f
		s2 += f * f
	}
	if len(xs) == 0 || s2 == 0 {
		return 1
	}
	return s * s / (float64(len(xs)) * s2)
}

// ServiceLogs are a service's chain history and its replicas' output.
type ServiceLogs struct {
	Service string          `json:"service"`
	Events  []ServiceEvent  `json:"events"`
	Output  []ReplicaOutput `json:"output"`
}

// ServiceEvent is one line of a service's history on chain.
type ServiceEvent struct {
	Height uint64    `json:"height"`
	Time   time.Time `json:"time"`
	Type   string    `json:"type"`
	Lease  string    `json:"lease,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// ReplicaOutput is what one replica wrote to stderr (its last bytes), as
// its provider serves it to the owner.
type ReplicaOutput struct {
	Lease    string `json:"lease"`
	Provider string `json:"provider"`
	Logs     string `json:"logs"`
	Error    string `json:"error,omitempty"`
}

// ScaleRequest is the body of POST /v1/services/{name}/scale.
type ScaleRequest struct {
	Replicas uint32 `json:"replicas"`
}

// DeployService sends a ServiceOpen for spec with the module.
func (c *Client) DeployService(ctx context.Context, spec ServiceSpec, module []byte) (Service, error) {
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return Service{}, fmt.Errorf("deploy service: encode spec: %w", err)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormField("spec")
	if err == nil {
		_, err = fw.Write(specJSON)
	}
	if err == nil && module != nil {
		var pw io.Writer
		if pw, err = mw.CreateFormFile("payload", "payload"); err == nil {
			_, err = pw.Write(module)
		}
	}
	if err == nil {
		err = mw.Close()
	}
	if err != nil {
		return Service{}, fmt.Errorf("deploy service: %w", err)
	}
	resp, err := c.do(ctx, http.MethodPost, "/v1/services", nil, &buf, mw.FormDataContentType())
	if err != nil {
		return Service{}, err
	}
	defer resp.Body.Close()
	var s Service
	return s, decodeBody(resp, "/v1/services", &s)
}

// Services lists the services this node owns (all=false: running only).
func (c *Client) Services(ctx context.Context, all bool) ([]Service, error) {
	q := url.Values{}
	if all {
		q.Set("all", "true")
	}
	var out []Service
	return out, c.getJSON(ctx, "/v1/services", q, &out)
}

// Service is one service by name (this node's) or id.
func (c *Client) Service(ctx context.Context, name string) (Service, error) {
	var s Service
	return s, c.getJSON(ctx, "/v1/services/"+url.PathEscape(name), nil, &s)
}

// ServiceStats is the gateway's view of a service's replicas.
func (c *Client) ServiceStats(ctx context.Context, name string) (ServiceStats, error) {
	var s ServiceStats
	return s, c.getJSON(ctx, "/v1/services/"+url.PathEscape(name)+"/stats", nil, &s)
}

// ServiceLogs is a service's history and replica output.
func (c *Client) ServiceLogs(ctx context.Context, name string) (ServiceLogs, error) {
	var s ServiceLogs
	return s, c.getJSON(ctx, "/v1/services/"+url.PathEscape(name)+"/logs", nil, &s)
}

// ScaleService sends a ServiceScale.
func (c *Client) ScaleService(ctx context.Context, name string, replicas uint32) (Service, error) {
	var s Service
	return s, c.postJSON(ctx, "/v1/services/"+url.PathEscape(name)+"/scale", ScaleRequest{Replicas: replicas}, &s)
}

// CloseService sends a ServiceClose.
func (c *Client) CloseService(ctx context.Context, name string) (Service, error) {
	var s Service
	return s, c.postJSON(ctx, "/v1/services/"+url.PathEscape(name)+"/close", nil, &s)
}

// FormatPeriods is "n×period" for humans.
func FormatPeriods(n uint64, periodMs int64) string {
	return strconv.FormatUint(n, 10) + "×" + (time.Duration(periodMs) * time.Millisecond).String()
}
