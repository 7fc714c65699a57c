package svclife

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/cockroachdb/datadriven"
)

// The scripts in testdata/ drive one node's Core and print every action.
// Leases and services are named; time is virtual from t0 (unix ms 0 is
// t0 too, so lease starts are offsets). `go test -rewrite` rewrites them.
// Commands:
//
//	config [claim-every=N] [lag=N] [min-lag=D] [down-after=D] [start-grace=D] [cooldown=D] [down-reports=N]
//	lease id=L svc=S [mine] [status=active|ending|settled] [start=D] [period=D] [funded=N] [paid=N]
//	service id=S [replicas=N] [min=N] [max=N] [budget=N] [price=N]   an owned running service
//	drop-service id=S                 the service is no longer running
//	block                             a Block with the current view
//	started lease=L attempt=N [err=E]
//	receipt lease=L periods=N [err=E]
//	tx lease=L|svc=S kind=claim|leave|down|scale [err=E]
//	usage lease=L [requests=N] [bytes=N] ok=true|false
//	load svc=S p99=D out=F
//	tick | advance D
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := &script{now: t0, core: New(Config{}), leases: map[string]*Lease{}, mine: map[string]bool{}, services: map[string]*Service{}, names: map[[32]byte]string{}}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string { return s.run(t, d) })
	})
}

var t0 = time.UnixMilli(0).UTC()

type script struct {
	core     *Core
	now      time.Time
	leases   map[string]*Lease
	mine     map[string]bool
	services map[string]*Service
	order    []string
	names    map[[32]byte]string
}

func (s *script) id(name string) [32]byte {
	id := sha256.Sum256([]byte(name))
	s.names[id] = name
	return id
}

func args(d *datadriven.TestData) map[string]string {
	m := map[string]string{}
	for _, a := range d.CmdArgs {
		v := ""
		if len(a.Vals) > 0 {
			v = a.Vals[0]
		}
		m[a.Key] = v
	}
	return m
}

func num(t *testing.T, m map[string]string, k string, def uint64) uint64 {
	v, ok := m[k]
	if !ok {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", k, v, err)
	}
	return n
}

func dur(t *testing.T, m map[string]string, k string, def time.Duration) time.Duration {
	v, ok := m[k]
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", k, v, err)
	}
	return d
}

func errOf(m map[string]string) error {
	if e, ok := m["err"]; ok {
		return errors.New(e)
	}
	return nil
}

func (s *script) run(t *testing.T, d *datadriven.TestData) string {
	m := args(d)
	var acts []Action
	switch d.Cmd {
	case "config":
		s.core = New(Config{ClaimEvery: num(t, m, "claim-every", 0), MaxReceiptLag: num(t, m, "lag", 0), DownAfter: dur(t, m, "down-after", 0),
			MinReceiptLag: dur(t, m, "min-lag", time.Millisecond), StartGrace: dur(t, m, "start-grace", time.Millisecond),
			Elastic: Elastic{Cooldown: dur(t, m, "cooldown", 0), DownAfter: int(num(t, m, "down-reports", 3))}})
		return ""
	case "lease":
		name := m["id"]
		l := s.leases[name]
		if l == nil {
			l = &Lease{ID: s.id(name), Start: s.now.UnixMilli(), PeriodMs: 2000, Funded: 1, Status: chain.LeaseActive, OwnerPeer: "peer-owner"}
			s.leases[name] = l
			s.order = append(s.order, name)
		}
		if v, ok := m["svc"]; ok {
			l.Service = s.id(v)
			l.Name = v
		}
		if _, ok := m["mine"]; ok {
			s.mine[name] = true
		}
		switch m["status"] {
		case "active":
			l.Status = chain.LeaseActive
		case "ending":
			l.Status = chain.LeaseEnding
		case "settled":
			l.Status = chain.LeaseSettled
		}
		if _, ok := m["start"]; ok {
			l.Start = dur(t, m, "start", 0).Milliseconds()
		}
		l.PeriodMs = dur(t, m, "period", time.Duration(l.PeriodMs)*time.Millisecond).Milliseconds()
		l.Funded = num(t, m, "funded", l.Funded)
		l.PaidFor = num(t, m, "paid", l.PaidFor)
		return ""
	case "service":
		name := m["id"]
		v := s.services[name]
		if v == nil {
			v = &Service{ID: s.id(name), Name: name, Replicas: 1, Min: 1, Max: 3, Budget: 1000, Price: 10, PeriodMs: 2000}
			s.services[name] = v
		}
		v.Replicas = uint32(num(t, m, "replicas", uint64(v.Replicas)))
		v.Min = uint32(num(t, m, "min", uint64(v.Min)))
		v.Max = uint32(num(t, m, "max", uint64(v.Max)))
		v.Budget = num(t, m, "budget", v.Budget)
		v.Price = num(t, m, "price", v.Price)
		return ""
	case "drop-service":
		delete(s.services, m["id"])
		return ""
	case "block":
		b := Block{}
		for _, name := range s.order {
			l := s.leases[name]
			if s.mine[name] && l.Status != chain.LeaseSettled {
				b.Provided = append(b.Provided, *l)
			}
		}
		var svcNames []string
		for n := range s.services {
			svcNames = append(svcNames, n)
		}
		sort.Strings(svcNames)
		for _, n := range svcNames {
			v := *s.services[n]
			v.Leases = nil
			for _, ln := range s.order {
				if l := s.leases[ln]; l.Service == v.ID && l.Status == chain.LeaseActive {
					v.Leases = append(v.Leases, *l)
				}
			}
			b.Owned = append(b.Owned, v)
		}
		acts = s.core.Step(s.now, b)
	case "started":
		acts = s.core.Step(s.now, Started{Lease: s.id(m["lease"]), Attempt: int(num(t, m, "attempt", 1)), Err: errOf(m)})
	case "receipt":
		id := s.id(m["lease"])
		acts = s.core.Step(s.now, ReceiptFetched{Lease: id, Receipt: chain.ServiceReceipt{Lease: id, Periods: num(t, m, "periods", 0)}, Err: errOf(m)})
	case "tx":
		kinds := map[string]chain.Kind{"claim": chain.KindServiceClaim, "leave": chain.KindServiceLeave, "down": chain.KindServiceDown, "scale": chain.KindServiceScale}
		var id chain.LeaseID
		if v, ok := m["lease"]; ok {
			id = s.id(v)
		}
		acts = s.core.Step(s.now, TxDone{Lease: id, Kind: kinds[m["kind"]], Err: errOf(m)})
	case "usage":
		acts = s.core.Step(s.now, Usage{Lease: s.id(m["lease"]), Requests: num(t, m, "requests", 0), Bytes: num(t, m, "bytes", 0), OK: m["ok"] == "true"})
	case "load":
		out, err := strconv.ParseFloat(m["out"], 64)
		if err != nil {
			t.Fatal(err)
		}
		acts = s.core.Step(s.now, Load{Service: s.id(m["svc"]), P99: dur(t, m, "p99", 0), Outstanding: out})
	case "tick":
		acts = s.core.Step(s.now, Tick{})
	case "advance":
		dd, err := time.ParseDuration(d.CmdArgs[0].Key)
		if err != nil {
			t.Fatal(err)
		}
		s.now = s.now.Add(dd)
		return ""
	default:
		t.Fatalf("unknown command %q", d.Cmd)
	}
	var lines []string
	for _, a := range acts {
		lines = append(lines, s.format(a))
	}
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

func (s *script) format(a Action) string {
	n := func(id [32]byte) string { return s.names[id] }
	switch a := a.(type) {
	case StartReplica:
		return fmt.Sprintf("start %s attempt=%d", n(a.Lease.ID), a.Attempt)
	case StopReplica:
		return fmt.Sprintf("stop %s", n(a.Lease))
	case FetchReceipt:
		return fmt.Sprintf("fetch-receipt %s from=%s", n(a.Lease), a.From)
	case SendClaim:
		return fmt.Sprintf("claim %s periods=%d", n(a.Receipt.Lease), a.Receipt.Periods)
	case SendLeave:
		return fmt.Sprintf("leave %s: %s", n(a.Lease), a.Reason)
	case SignReceipt:
		return fmt.Sprintf("sign-receipt %s periods=%d requests=%d bytes=%d", n(a.Receipt.Lease), a.Receipt.Periods, a.Receipt.Requests, a.Receipt.Bytes)
	case SendDown:
		return fmt.Sprintf("down %s: %s", n(a.Lease), a.Reason)
	case SendScale:
		return fmt.Sprintf("scale %s to %d: %s", n(a.Service), a.Replicas, a.Reason)
	}
	return fmt.Sprintf("%T", a)
}
