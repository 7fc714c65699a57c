package httpapi_test

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/node/api"
)

type oaSchema struct {
	Ref        string               `yaml:"$ref"`
	Type       string               `yaml:"type"`
	Enum       []string             `yaml:"enum"`
	Properties map[string]*oaSchema `yaml:"properties"`
	Items      *oaSchema            `yaml:"items"`
	AddProps   any                  `yaml:"additionalProperties"`
}

type oaDoc struct {
	Paths      map[string]map[string]any `yaml:"paths"`
	Components struct {
		Schemas map[string]*oaSchema `yaml:"schemas"`
	} `yaml:"components"`
}

func loadDoc(t *testing.T) *oaDoc {
	t.Helper()
	var d oaDoc
	if err := yaml.Unmarshal(api.OpenAPI, &d); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return &d
}

// Every route the server registers is in the document, and every
// operation the document lists is a route.
func TestOpenAPIListsExactlyTheRoutes(t *testing.T) {
	src, err := os.ReadFile("routes.go")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := os.ReadFile("routes_service.go")
	if err != nil {
		t.Fatal(err)
	}
	src = append(src, svc...)
	var code []string
	for _, m := range regexp.MustCompile(`(?:short|long|h)\("(GET|POST|PUT|DELETE) (/[^"]*)"`).FindAllStringSubmatch(string(src), -1) {
		code = append(code, m[1]+" "+m[2])
	}
	var doc []string
	for p, ops := range loadDoc(t).Paths {
		for op := range ops {
			if op == "parameters" {
				continue
			}
			doc = append(doc, strings.ToUpper(op)+" "+p)
		}
	}
	sort.Strings(code)
	sort.Strings(doc)
	if len(code) < 20 {
		t.Fatalf("found only %d routes in routes.go: the pattern no longer matches how routes are registered", len(code))
	}
	if !slices.Equal(code, doc) {
		t.Fatalf("routes and openapi.yaml differ:\ncode: %v\ndoc:  %v", code, doc)
	}
}

// The schema of each JSON type has exactly the type's fields, down
// through nested objects and arrays.
func TestOpenAPISchemasMatchTheJSONTypes(t *testing.T) {
	d := loadDoc(t)
	types := map[string]any{
		"Status": api.Status{}, "Block": api.Block{}, "Tx": api.Tx{}, "Validator": api.Validator{}, "Account": api.Account{},
		"Resources": api.Resources{}, "Offer": api.Offer{}, "Constraints": api.Constraints{}, "Bid": api.Bid{}, "Match": api.Match{},
		"MarketStats": api.MarketStats{}, "JobSpec": api.JobSpec{}, "OfferFit": api.OfferFit{}, "Job": api.Job{}, "JobLogs": api.JobLogs{},
		"Verification": api.Verification{}, "DryRun": api.DryRun{}, "SendRequest": api.SendRequest{}, "AmountRequest": api.AmountRequest{},
		"TxResult": api.TxResult{}, "SubmitTxsRequest": api.SubmitTxsRequest{}, "SubmitTxsResponse": api.SubmitTxsResponse{}, "ProviderStatus": api.ProviderStatus{}, "Event": api.Event{},
		"ServiceSpec": api.ServiceSpec{}, "Service": api.Service{}, "Lease": api.Lease{}, "ServiceStats": api.ServiceStats{},
		"ServiceLogs": api.ServiceLogs{}, "ScaleRequest": api.ScaleRequest{},
	}
	for name, v := range types {
		s, ok := d.Components.Schemas[name]
		if !ok {
			t.Errorf("no schema %s", name)
			continue
		}
		compare(t, d, name, s, reflect.TypeOf(v))
	}
}

var opaque = map[reflect.Type]bool{reflect.TypeOf(time.Time{}): true, reflect.TypeOf(api.Duration{}): true}

func compare(t *testing.T, d *oaDoc, path string, s *oaSchema, ty reflect.Type) {
	t.Helper()
	for s.Ref != "" {
		s = d.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")]
		if s == nil {
			t.Errorf("%s: dangling $ref", path)
			return
		}
	}
	for ty.Kind() == reflect.Pointer {
		ty = ty.Elem()
	}
	switch {
	case opaque[ty]:
	case ty.Kind() == reflect.Slice && ty.Elem().Kind() != reflect.Uint8:
		if s.Items != nil {
			compare(t, d, path+"[]", s.Items, ty.Elem())
		}
	case ty.Kind() == reflect.Struct:
		if s.Properties == nil {
			if s.Type == "object" && s.AddProps == nil {
				t.Errorf("%s: schema lists no properties; %s has %v", path, ty, jsonFields(ty))
			}
			return
		}
		fields := jsonFields(ty)
		for name, ft := range fields {
			ps, ok := s.Properties[name]
			if !ok {
				t.Errorf("%s: field %q of %s missing from the schema", path, name, ty)
				continue
			}
			compare(t, d, path+"."+name, ps, ft)
		}
		for name := range s.Properties {
			if _, ok := fields[name]; !ok {
				t.Errorf("%s: schema property %q is not a field of %s", path, name, ty)
			}
		}
	}
}

func jsonFields(ty reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < ty.NumField(); i++ {
		f := ty.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// Every value the code can put in an enumerated field is listed.
func TestOpenAPIEnumsListEveryValueTheCodeProduces(t *testing.T) {
	d := loadDoc(t)
	var kinds []string
	for k := chain.KindTransfer; !strings.HasPrefix(k.String(), "kind("); k++ {
		kinds = append(kinds, k.String())
	}
	cases := []struct {
		schema, prop string
		values       []string
	}{
		{"Tx", "type", kinds},
		{"Tx", "status", []string{api.TxOK, api.TxFailed, api.TxPending, api.TxUnknown}},
		{"TxResult", "status", []string{"pending", "committed", "failed", api.TxRejected}},
		{"Tx", "events[].type", []string{chain.EvMatched, chain.EvCompleted, chain.EvFailed, chain.EvTimedOut, chain.EvUnavailable, chain.EvCancelled,
			chain.EvUnbonded, chain.EvSlashed, chain.EvLeaving, chain.EvWithdrawn}},
		{"JobState", "", []string{api.StateSubmitted, api.StateBidding, api.StateMatched, api.StateRunning, api.StateResultCommitted,
			api.StatePaid, api.StateExpired, api.StateFailed, api.StateTimedOut, api.StateCancelled, api.StateResultUnavailable, api.StatePayloadUnavailable}},
		{"Match", "state", []string{chain.MatchOpen.String(), chain.MatchCompleted.String(), chain.MatchFailed.String(), chain.MatchTimedOut.String(), chain.MatchUnavailable.String()}},
	}
	for _, c := range cases {
		s := d.Components.Schemas[c.schema]
		for _, p := range strings.Split(c.prop, ".") {
			if s == nil || p == "" {
				break
			}
			arr := strings.HasSuffix(p, "[]")
			s = s.Properties[strings.TrimSuffix(p, "[]")]
			if arr && s != nil {
				s = s.Items
			}
		}
		if s == nil {
			t.Errorf("%s.%s: not in the document", c.schema, c.prop)
			continue
		}
		for _, v := range c.values {
			if !slices.Contains(s.Enum, v) {
				t.Errorf("%s.%s: enum %v lacks %q, which the code produces", c.schema, c.prop, s.Enum, v)
			}
		}
	}
}
