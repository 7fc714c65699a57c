package market

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/wallet"
)

var update = flag.Bool("update", false, "rewrite the expected output of testdata/*.txt scripts")

// TestScripts runs the market specs in testdata/*.txt. Each line is a
// command; a command followed by a "----" line is checked against the
// output lines that follow, up to a blank line. Run with -update to
// rewrite the expected output after a deliberate change.
//
//	min-collateral N
//	provider NAME [collateral=N] [rep=N] [reserved-cpu=N] [reserved-mem=N] [unregistered]
//	offer PROVIDER [seq=N] [cpu=N] [mem=N] [disk=N] [gpus=N] [gpu-model=S] [load=N]
//	      [exec=a,b] [price=CPU/GIB/JOB] [region=S] [labels=a=1,b=2] [expires=+MS]
//	client NAME balance=N
//	bid CLIENT JOB [cpu=N] [mem=N] [disk=N] [gpus=N] [gpu-model=S] [exec=S] [max=N]
//	    [timeout=MS] [pref=S] [regions=a,b] [labels=a=1] [near=a,b] [minrep=N] [matchby=+MS]
//	match [limit=N] [at=+MS] [seed=N] [commit]   (commit applies the matches to the chain view)
//	explain JOB [at=+MS]
//	settle JOB cpu-ms=N mem-mib-ms=N              (pays, refunds, releases the reservation)
//	state                                         (providers' reservations, clients' balances)
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runScript(t, f) })
	}
}

type script struct {
	t        *testing.T
	view     *fakeView
	keys     map[string]wallet.PrivateKey
	names    map[wallet.Address]string
	offers   map[string]*Offer
	bids     []*Bid
	jobs     map[string]*Bid
	jobNames map[BidID]string
	matches  map[string]Match // committed, by job
	escrow   uint64
	nkeys    int
}

func runScript(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &script{t: t, view: newFakeView(0), keys: map[string]wallet.PrivateKey{}, names: map[wallet.Address]string{},
		offers: map[string]*Offer{}, jobs: map[string]*Bid{}, jobNames: map[BidID]string{}, matches: map[string]Match{}}
	var out strings.Builder
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		out.WriteString(line + "\n")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		got := s.run(i+1, trimmed)
		if i+1 < len(lines) && lines[i+1] == "----" {
			i++ // skip the old expected output
			for i+1 < len(lines) && lines[i+1] != "" {
				i++
			}
			out.WriteString("----\n" + got)
		} else if got != "" {
			t.Errorf("%s:%d: %q printed output but has no ---- block:\n%s", path, i+1, trimmed, got)
		}
	}
	want := strings.TrimRight(string(data), "\n")
	have := strings.TrimRight(out.String(), "\n")
	if *update {
		if err := os.WriteFile(path, []byte(have+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if have != want {
		t.Errorf("%s: output differs (run with -update to accept):\n%s", path, diffLines(want, have))
	}
}

func diffLines(want, have string) string {
	w, h := strings.Split(want, "\n"), strings.Split(have, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(h)); i++ {
		var x, y string
		if i < len(w) {
			x = w[i]
		}
		if i < len(h) {
			y = h[i]
		}
		if x != y {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  have %q\n", i+1, x, y)
		}
	}
	return b.String()
}

func (s *script) key(name string) wallet.PrivateKey {
	if k, ok := s.keys[name]; ok {
		return k
	}
	s.nkeys++
	k := testKey(s.t, 50_000+s.nkeys)
	s.keys[name] = k
	s.names[k.Address()] = name
	return k
}

type args map[string]string

func parseArgs(fields []string) args {
	a := args{}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		a[k] = v
	}
	return a
}

func (s *script) num(a args, k string, def uint64) uint64 {
	v, ok := a[k]
	if !ok {
		return def
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(v, "+"), 10, 64)
	if err != nil {
		s.t.Fatalf("%s=%q: %v", k, v, err)
	}
	return n
}

func list(a args, k string) []string {
	if v, ok := a[k]; ok && v != "" {
		return strings.Split(v, ",")
	}
	return nil
}

func (s *script) offerName(id OfferID) string {
	return fmt.Sprintf("%s#%d", s.names[id.Provider], id.Seq)
}

func (s *script) run(lineNo int, line string) string {
	t := s.t
	f := strings.Fields(line)
	cmd, rest := f[0], f[1:]
	switch cmd {
	case "min-collateral":
		s.view.minColl = s.num(parseArgs([]string{"n=" + rest[0]}), "n", 0)
	case "provider":
		a := parseArgs(rest[1:])
		k := s.key(rest[0])
		if _, un := a["unregistered"]; !un {
			s.view.providers[k.Address()] = ProviderState{
				Collateral: s.num(a, "collateral", 1000), Reputation: uint32(s.num(a, "rep", 500)),
				Reserved: Resources{CPU: s.num(a, "reserved-cpu", 0), MemMiB: s.num(a, "reserved-mem", 0)},
			}
		}
	case "offer":
		a := parseArgs(rest[1:])
		o := Offer{
			PeerID: "peer-" + rest[0], Seq: s.num(a, "seq", 1), Expires: t0 + int64(s.num(a, "expires", 60_000)),
			Total: Resources{CPU: s.num(a, "cpu", 4000), MemMiB: s.num(a, "mem", 8192), DiskMiB: s.num(a, "disk", 0),
				GPUs: uint32(s.num(a, "gpus", 0)), GPUModel: a["gpu-model"]},
			Load: uint32(s.num(a, "load", 0)), Executors: list(a, "exec"), Region: a["region"], Labels: list(a, "labels"),
		}
		if o.Executors == nil {
			o.Executors = []string{ExecWASM}
		}
		o.Free = o.Total
		if p := a["price"]; p != "" {
			var c, m, j uint64
			if _, err := fmt.Sscanf(p, "%d/%d/%d", &c, &m, &j); err != nil {
				t.Fatalf("line %d: price=%q: %v", lineNo, p, err)
			}
			o.Terms = PriceTerms{PerCPUSecond: c, PerGiBSecond: m, PerJob: j}
		}
		s.offers[rest[0]] = signedOffer(t, s.key(rest[0]), o)
		if err := s.offers[rest[0]].Validate(t0); err != nil {
			t.Fatalf("line %d: offer invalid: %v", lineNo, err)
		}
	case "client":
		s.view.balances[s.key(rest[0]).Address()] = s.num(parseArgs(rest[1:]), "balance", 0)
	case "bid":
		a := parseArgs(rest[2:])
		sum := sha256.Sum256([]byte(rest[1]))
		b := Bid{
			Executor: ExecWASM, Payload: Payload{SHA256: sum[:], Size: 1, Peer: "peer-" + rest[0]},
			Resources: Resources{CPU: s.num(a, "cpu", 1000), MemMiB: s.num(a, "mem", 512), DiskMiB: s.num(a, "disk", 0),
				GPUs: uint32(s.num(a, "gpus", 0)), GPUModel: a["gpu-model"]},
			MaxPrice: s.num(a, "max", 10_000), MatchBy: t0 + int64(s.num(a, "matchby", 30_000)),
			TimeoutMs: int64(s.num(a, "timeout", 60_000)), Preference: PreferCheapest, Replicas: 1,
			Constraints: Constraints{Regions: list(a, "regions"), Labels: list(a, "labels"), MinReputation: uint32(s.num(a, "minrep", 0))},
			Near:        list(a, "near"),
		}
		if e := a["exec"]; e != "" {
			b.Executor = e
		}
		if p := a["pref"]; p != "" {
			b.Preference = p
		}
		sb := signedBid(t, s.key(rest[0]), b)
		if err := sb.Validate(t0); err != nil {
			t.Fatalf("line %d: bid invalid: %v", lineNo, err)
		}
		s.bids = append(s.bids, sb)
		s.jobs[rest[1]] = sb
		s.jobNames[sb.ID()] = rest[1]
	case "match":
		a := parseArgs(rest)
		var seed [32]byte
		seed[0] = byte(s.num(a, "seed", 0))
		var offers []*Offer
		for _, o := range s.offers {
			offers = append(offers, o)
		}
		at := t0 + int64(s.num(a, "at", 0))
		ms := Matcher{}.Match(NewSnapshot(offers, s.bids), s.view, at, seed, int(s.num(a, "limit", 100)))
		var b strings.Builder
		if len(ms) == 0 {
			b.WriteString("no match\n")
		}
		_, commit := a["commit"]
		for i := range ms {
			m := &ms[i]
			if err := CheckMatch(testChain, m, s.view, at); err != nil {
				t.Fatalf("line %d: the matcher produced an invalid match: %v", lineNo, err)
			}
			if commit {
				s.view.apply(t, m)
				s.escrow += m.Escrow()
				s.matches[s.jobNames[m.ID()]] = *m
			}
			fmt.Fprintf(&b, "%s -> %s price=%d escrow=%d\n", s.jobNames[m.ID()], s.offerName(m.Offer.ID()), m.Price, m.Escrow())
		}
		return b.String()
	case "explain":
		a := parseArgs(rest[1:])
		var offers []*Offer
		for _, o := range s.offers {
			offers = append(offers, o)
		}
		var b strings.Builder
		for _, r := range (Matcher{}).Explain(s.jobs[rest[0]], NewSnapshot(offers, nil), s.view, t0+int64(s.num(a, "at", 0))) {
			name := "bid"
			if r.Offer != (OfferID{}) {
				name = s.offerName(r.Offer)
			}
			if r.Fits {
				fmt.Fprintf(&b, "%s: fits price=%d\n", name, r.Price)
				continue
			}
			var parts []string
			for _, f := range r.Failures {
				parts = append(parts, string(f.Code))
			}
			fmt.Fprintf(&b, "%s: %s\n", name, strings.Join(parts, ", "))
		}
		return b.String()
	case "settle":
		a := parseArgs(rest[1:])
		m, ok := s.matches[rest[0]]
		if !ok {
			t.Fatalf("line %d: job %s has no committed match", lineNo, rest[0])
		}
		p, err := Settle(&m, Usage{CPUMs: s.num(a, "cpu-ms", 0), MemMiBMs: s.num(a, "mem-mib-ms", 0)})
		if err != nil {
			t.Fatalf("line %d: %v", lineNo, err)
		}
		s.view.balances[m.Bid.ClientAddress()] += p.Refund
		s.view.balances[m.Offer.ProviderAddress()] += p.Provider
		s.escrow -= m.Escrow()
		ps := s.view.providers[m.Offer.ProviderAddress()]
		if ps.Reserved, err = ps.Reserved.Sub(m.Bid.Resources); err != nil {
			t.Fatalf("line %d: release: %v", lineNo, err)
		}
		s.view.providers[m.Offer.ProviderAddress()] = ps
		delete(s.matches, rest[0])
		return fmt.Sprintf("provider +%d, client refund %d\n", p.Provider, p.Refund)
	case "state":
		var b strings.Builder
		var names []string
		for n := range s.keys {
			names = append(names, n)
		}
		for _, n := range sortedCopy(names) {
			a := s.keys[n].Address()
			if ps, ok := s.view.providers[a]; ok {
				fmt.Fprintf(&b, "%s: reserved %v\n", n, ps.Reserved)
			}
			if bal, ok := s.view.balances[a]; ok {
				fmt.Fprintf(&b, "%s: balance %d\n", n, bal)
			}
		}
		fmt.Fprintf(&b, "escrow: %d\n", s.escrow)
		return b.String()
	default:
		t.Fatalf("line %d: unknown command %q", lineNo, cmd)
	}
	return ""
}
