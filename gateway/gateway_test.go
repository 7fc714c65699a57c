package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/bourse-net/bourse/internal/wire"
	"github.com/bourse-net/bourse/p2p"
	"github.com/bourse-net/bourse/wallet"
	"github.com/bourse-net/bourse/worker/svcwire"
)

// threeReplicas starts three providers with one svcprog replica each,
// the ith with env[i], and a gateway routing service "app" to them.
func threeReplicas(t *testing.T, cfg Config, env ...string) (*Gateway, string, []*provider, []Replica) {
	t.Helper()
	var ps []*provider
	var reps []Replica
	for i := range 3 {
		p := newProvider(t, ProviderConfig{})
		var e []string
		if i < len(env) && env[i] != "" {
			e = []string{env[i]}
		}
		reps = append(reps, p.start(t, 5*time.Second, 1, e...))
		ps = append(ps, p)
	}
	rt := &routes{m: map[string][]Replica{"app": reps, "empty": nil}}
	g, srv := newGateway(t, cfg, rt, ps...)
	return g, srv.URL, ps, reps
}

// measured makes the gateway believe it just measured r at latency d.
func measured(g *Gateway, r Replica, d time.Duration) {
	st := g.state("app", r)
	st.mu.Lock()
	st.ewma, st.sampled = d, time.Now()
	st.mu.Unlock()
}

// load sends n GETs of path with c workers and returns the status counts.
func load(t *testing.T, url string, n, c int) map[int]int {
	t.Helper()
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range c {
		wg.Go(func() {
			for range next {
				resp, err := http.Get(url)
				code := 0
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return codes
}

func TestGatewayRoutesByPathAndHost(t *testing.T) {
	g, url, _, reps := threeReplicas(t, Config{})
	code, body, hdr := do(t, "GET", url+"/svc/app/hello", nil)
	if code != 200 || body != "hello" || hdr.Get("X-Bourse-Replica") == "" {
		t.Fatalf("path route: %d %q %v", code, body, hdr)
	}
	req, _ := http.NewRequest("POST", url+"/echo?x=1", strings.NewReader("payload"))
	req.Host = "app.svc.localhost"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "payload" || resp.Header.Get("X-Method") != "POST" {
		t.Fatalf("host route: %d %q", resp.StatusCode, b)
	}
	for _, c := range []struct {
		path string
		code int
		why  string
	}{
		{"/svc/nope/x", 404, `unknown service "nope"`},
		{"/other", 404, "no service named"},
		{"/svc/empty/x", 503, "no live replica placed"},
	} {
		code, body, _ := do(t, "GET", url+c.path, nil)
		if code != c.code || !strings.Contains(body, c.why) {
			t.Errorf("%s: %d %q, want %d %q", c.path, code, body, c.code, c.why)
		}
	}
	if code, _, _ := do(t, "POST", url+"/svc/app/echo", bytes.NewReader(make([]byte, svcwire.DefaultMaxBody+1))); code != 413 {
		t.Errorf("oversized body: %d, want 413", code)
	}
	// Under concurrent load every replica serves and the spread is fair.
	codes := load(t, url+"/svc/app/sleep?ms=5", 120, 6)
	if codes[200] != 120 {
		t.Fatalf("load: %v", codes)
	}
	st := g.Stats("app")
	if len(st.Replicas) != 3 || st.Fairness < 0.6 {
		t.Errorf("stats: fairness %.2f, %+v", st.Fairness, st.Replicas)
	}
	for _, r := range st.Replicas {
		if r.Requests == 0 || r.Latency.Count == 0 {
			t.Errorf("replica %x got nothing: %+v", r.LeaseID[:6], r)
		}
	}
	_ = reps
}

// TestGatewayOwnReplica: a replica this node provides is called without
// the network; one it does not run (yet) is refused without dialling
// itself, and the request goes to another replica.
func TestGatewayOwnReplica(t *testing.T) {
	p := newProvider(t, ProviderConfig{})
	own := p.start(t, 5*time.Second, 1)
	other := newProvider(t, ProviderConfig{})
	remote := other.start(t, 5*time.Second, 1)
	missing := Replica{LeaseID: [32]byte{0x0e}, Provider: p.hs.ID()}
	rt := &routes{m: map[string][]Replica{"own": {own}, "app": {missing, remote}}}
	g, err := New(Config{Local: p.lookup}, p.hs, rt)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, p.hs, other.hs)
	srv := httptest.NewServer(g)
	defer srv.Close()
	if code, body, _ := do(t, "GET", srv.URL+"/svc/own/hello", nil); code != 200 || body != "hello" {
		t.Fatalf("own replica: %d %q", code, body)
	}
	for range 5 {
		if code, body, _ := do(t, "POST", srv.URL+"/svc/app/echo", strings.NewReader("x")); code != 200 {
			t.Fatalf("app: %d %q", code, body)
		}
	}
	if p.h.Stats().Requests != 0 {
		t.Errorf("the own replica went through svc/1: %+v", p.h.Stats())
	}
}

func TestGatewayRefusesPublicBindUnlessAsked(t *testing.T) {
	rt := &routes{m: map[string][]Replica{}}
	if _, err := New(Config{Listen: "0.0.0.0:0"}, nil, rt); err == nil {
		t.Error("public bind accepted without Public")
	}
	if _, err := New(Config{Listen: "0.0.0.0:0", Public: true}, nil, rt); err != nil {
		t.Error(err)
	}
}

// TestGatewayFailoverWhenProviderHostClosed: one provider's host goes
// away while it looks the cheapest replica; every request still succeeds
// on the others, and the dead replica is tried, fails and is avoided.
func TestGatewayFailoverWhenProviderHostClosed(t *testing.T) {
	g, url, ps, reps := threeReplicas(t, Config{})
	if codes := load(t, url+"/svc/app/hello", 30, 3); codes[200] != 30 {
		t.Fatalf("before: %v", codes)
	}
	ps[0].h.Close()
	ps[0].hs.Close()
	// Make the closed replica the first choice whenever it is a candidate.
	measured(g, reps[0], time.Nanosecond)
	if codes := load(t, url+"/svc/app/hello", 60, 3); codes[200] != 60 {
		t.Fatalf("after closing a provider: %v", codes)
	}
	for _, r := range g.Stats("app").Replicas {
		if r.LeaseID == reps[0].LeaseID && r.Errors == 0 {
			t.Errorf("closed replica never tried: %+v", r)
		}
	}
}

// TestGatewayLateReplicaIsProbed: a replica that joins (or comes back
// from failing while it started) after the others have answered fast is
// tried at once, though its prior cost loses to every measured one, and
// then keeps a share.
func TestGatewayLateReplicaIsProbed(t *testing.T) {
	g, url, _, reps := threeReplicas(t, Config{})
	if codes := load(t, url+"/svc/app/hello", 30, 1); codes[200] != 30 {
		t.Fatalf("before: %v", codes)
	}
	late := newProvider(t, ProviderConfig{})
	rep := late.start(t, 5*time.Second, 1)
	connect(t, g.hs, late.hs)
	rt := g.routes.(*routes)
	rt.mu.Lock()
	rt.m["app"] = append(append([]Replica(nil), reps...), rep)
	rt.mu.Unlock()
	// The others look as fast as can be: a prior never wins against them.
	for _, r := range reps {
		measured(g, r, time.Nanosecond)
	}
	if codes := load(t, url+"/svc/app/hello", 10, 1); codes[200] != 10 {
		t.Fatalf("after the late replica joined: %v", codes)
	}
	for _, r := range g.Stats("app").Replicas {
		if r.LeaseID == rep.LeaseID && r.Requests-r.Errors == 0 {
			t.Fatalf("late replica never tried: %+v", r)
		}
	}
}

// TestGatewayDeadUnpickedReplicaSeenFailing: a replica that looks the
// most expensive dies; it is still probed about once a second, so the
// gateway counts its failures (what the owner's down report rests on)
// while every request succeeds on the others.
func TestGatewayDeadUnpickedReplicaSeenFailing(t *testing.T) {
	g, url, ps, reps := threeReplicas(t, Config{})
	if codes := load(t, url+"/svc/app/hello", 30, 1); codes[200] != 30 {
		t.Fatalf("before: %v", codes)
	}
	ps[0].h.Close()
	ps[0].hs.Close()
	measured(g, reps[0], time.Hour)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if codes := load(t, url+"/svc/app/hello", 10, 1); codes[200] != 10 {
			t.Fatalf("after closing a provider: %v", codes)
		}
		var errs uint64
		for _, r := range g.Stats("app").Replicas {
			if r.LeaseID == reps[0].LeaseID {
				errs = r.Errors
			}
		}
		if errs > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the dead replica was never tried in 15s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGatewaySlowReplicaGetsFallingShare: one replica answers 40 ms
// slower than the others; it ends with the smallest share, and its share
// of the second half of the traffic is below a third.
func TestGatewaySlowReplicaGetsFallingShare(t *testing.T) {
	g, url, _, reps := threeReplicas(t, Config{}, "DELAY_MS=40")
	share := func() (float64, uint64) {
		var slow, all uint64
		for _, r := range g.Stats("app").Replicas {
			all += r.Requests
			if r.LeaseID == reps[0].LeaseID {
				slow = r.Requests
			}
		}
		return float64(slow) / float64(all), slow
	}
	load(t, url+"/svc/app/hello", 150, 4)
	_, slow1 := share()
	load(t, url+"/svc/app/hello", 150, 4)
	s2, slow2 := share()
	second := float64(slow2-slow1) / 150
	t.Logf("slow replica: %.2f overall, %.2f of the second half", s2, second)
	if second >= 1.0/3 || s2 >= 1.0/3 {
		t.Errorf("slow replica share %.2f overall, %.2f of the second half; want below 1/3", s2, second)
	}
}

// TestGatewayAttackHandlerNeverAnswers: a handler that loops is cut at
// the service's request timeout; a GET is retried on the other replicas
// (which loop too) and ends 503 with the reasons, in bounded time.
func TestGatewayAttackHandlerNeverAnswers(t *testing.T) {
	p := newProvider(t, ProviderConfig{})
	rep := p.start(t, 500*time.Millisecond, 1)
	rt := &routes{m: map[string][]Replica{"app": {rep}}}
	_, srv := newGateway(t, Config{}, rt, p)
	code, body, _ := do(t, "GET", srv.URL+"/svc/app/loop", nil)
	if code != 503 || !strings.Contains(body, "handler timed out") {
		t.Fatalf("looping handler: %d %q", code, body)
	}
	// The instance was replaced: the service answers again.
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _, _ := do(t, "GET", srv.URL+"/svc/app/hello", nil)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("service did not recover: %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGatewayAttackProviderNeverAnswers: a provider reads requests and
// never answers; the gateway gives up at AttemptTimeout and every GET
// fails over to the honest replica.
func TestGatewayAttackProviderNeverAnswers(t *testing.T) {
	honest := newProvider(t, ProviderConfig{})
	good := honest.start(t, 5*time.Second, 1)
	hole := &provider{hs: newHost(t)}
	hole.hs.Libp2p().SetStreamHandler(hole.hs.ProtocolID(wire.ProtoService), func(s network.Stream) {
		io.Copy(io.Discard, s) // reads everything, answers nothing
	})
	bad := Replica{LeaseID: [32]byte{0xba, 0xd0}, Provider: hole.hs.ID()}
	rt := &routes{m: map[string][]Replica{"app": {bad, good}}}
	g, srv := newGateway(t, Config{AttemptTimeout: 300 * time.Millisecond}, rt, honest, hole)
	for i := range 10 {
		if code, body, _ := do(t, "GET", srv.URL+"/svc/app/hello", nil); code != 200 {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	for _, r := range g.Stats("app").Replicas {
		if r.LeaseID == bad.LeaseID && (r.Errors == 0 || r.Requests != r.Errors) {
			t.Errorf("black hole: %+v", r)
		}
	}
}

// TestGatewayAttackPostNotRetried: a replica that dies handling a POST
// is not sent it again elsewhere (502, one attempt), while a GET that
// fails the same way is retried on every replica (503, three attempts).
func TestGatewayAttackPostNotRetried(t *testing.T) {
	g, url, _, _ := threeReplicas(t, Config{})
	code, body, _ := do(t, "POST", url+"/svc/app/crash", strings.NewReader("x"))
	if code != 502 || !strings.Contains(body, "not idempotent") {
		t.Fatalf("POST: %d %q", code, body)
	}
	if st := g.Stats("app"); st.Requests != 1 {
		t.Fatalf("POST reached %d replicas, want 1: %+v", st.Requests, st.Replicas)
	}
	code, body, _ = do(t, "GET", url+"/svc/app/crash", nil)
	if st := g.Stats("app"); code != 503 || st.Requests != 1+3 {
		t.Fatalf("GET: %d %q after %d attempts in all, want 503 after 1+3", code, body, st.Requests)
	}
}

// rawStream opens a svc/1 stream from a fresh attacker host to p.
func rawStream(t *testing.T, from *p2p.Host, p *provider) network.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := from.Libp2p().NewStream(ctx, p.hs.ID(), p.hs.ProtocolID(wire.ProtoService))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitReset polls until reading s fails (the provider reset or closed it).
func waitReset(t *testing.T, s network.Stream) {
	t.Helper()
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(s); err == nil {
		// A clean close is fine too: the provider dropped the stream.
		return
	}
}

// TestGatewayAttackGarbageFrames: a peer sends garbage, a frame
// announcing more than the bound, a truncated frame and a well-framed
// envelope with a bad request inside; each stream is reset, counted, and
// an honest gateway is still served.
func TestGatewayAttackGarbageFrames(t *testing.T) {
	p := newProvider(t, ProviderConfig{FrameTimeout: 500 * time.Millisecond})
	rep := p.start(t, 5*time.Second, 1)
	attacker := newHost(t)
	connect(t, attacker, p.hs)
	huge := binary.BigEndian.AppendUint32(nil, uint32(maxRequestEnvelope(svcwire.DefaultMaxBody)+1))
	badEnv := binary.BigEndian.AppendUint32(nil, 40)
	badEnv = append(badEnv, envVersion)
	badEnv = append(badEnv, rep.LeaseID[:]...)
	badEnv = append(badEnv, 9, 9, 9, 9, 9, 9, 9) // version 9 request
	for name, b := range map[string][]byte{
		"oversized length": huge,
		"bad envelope":     badEnv,
		"truncated frame":  {0, 0, 1, 0, 1, 2, 3}, // 256 announced, 3 sent, then silence
	} {
		s := rawStream(t, attacker, p)
		if _, err := s.Write(b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		waitReset(t, s)
	}
	if st := p.h.Stats(); st.BadFrames != 2 {
		t.Errorf("bad frames %d, want 2 (the truncated one times out): %+v", st.BadFrames, st)
	}
	rt := &routes{m: map[string][]Replica{"app": {rep}}}
	_, srv := newGateway(t, Config{}, rt, p)
	if code, body, _ := do(t, "GET", srv.URL+"/svc/app/hello", nil); code != 200 {
		t.Fatalf("honest request after garbage: %d %q", code, body)
	}
}

// TestGatewayAttackManyStreams: a peer opens more streams than its
// budget and holds them; the ones over the budget are reset, and an
// honest gateway is still served.
func TestGatewayAttackManyStreams(t *testing.T) {
	const perPeer = 8
	p := newProvider(t, ProviderConfig{MaxStreamsPerPeer: perPeer, MaxStreams: 2 * perPeer})
	rep := p.start(t, 5*time.Second, 1)
	attacker := newHost(t)
	connect(t, attacker, p.hs)
	var streams []network.Stream
	for range 3 * perPeer {
		s := rawStream(t, attacker, p)
		s.Write([]byte{0}) // make the provider accept the stream: one byte of a length
		streams = append(streams, s)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.h.Stats().RefusedStreams < 2*perPeer {
		if time.Now().After(deadline) {
			t.Fatalf("streams over the budget not refused: %+v", p.h.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := p.h.Stats(); st.Streams != perPeer {
		t.Errorf("open streams %d, want the budget %d", st.Streams, perPeer)
	}
	rt := &routes{m: map[string][]Replica{"app": {rep}}}
	_, srv := newGateway(t, Config{}, rt, p)
	if codes := load(t, srv.URL+"/svc/app/hello", 20, 4); codes[200] != 20 {
		t.Fatalf("honest gateway while the attacker holds its budget: %v", codes)
	}
	for _, s := range streams {
		s.Reset()
	}
}

func TestGatewayReceiptsSignedAndCut(t *testing.T) {
	key, err := wallet.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	g, url, _, reps := threeReplicas(t, Config{Key: key, ChainID: testChain})
	load(t, url+"/svc/app/hello", 30, 3)
	rs := g.Receipts(7)
	var total uint64
	for _, r := range rs {
		if err := r.Verify(testChain); err != nil {
			t.Errorf("receipt %x: %v", r.LeaseID[:6], err)
		}
		if r.Period != 7 || r.Gateway != key.Public() || r.BytesOut == 0 || r.P50Micros == 0 {
			t.Errorf("receipt %+v", r)
		}
		total += r.Requests
	}
	if total != 30 || len(rs) == 0 || len(rs) > len(reps) {
		t.Fatalf("%d receipts for %d requests", len(rs), total)
	}
	tampered := rs[0]
	tampered.Requests++
	if tampered.Verify(testChain) == nil {
		t.Error("tampered receipt verifies")
	}
	if rs[0].Verify("other-chain") == nil {
		t.Error("receipt verifies on another chain")
	}
	if again := g.Receipts(8); len(again) != 0 {
		t.Errorf("usage counted twice: %+v", again)
	}
}

func TestJain(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{{nil, 1}, {[]float64{0, 0}, 1}, {[]float64{5, 5, 5}, 1}, {[]float64{9, 0, 0}, 1.0 / 3}, {[]float64{1, 3}, 0.8}} {
		if got := Jain(c.xs); fmt.Sprintf("%.4f", got) != fmt.Sprintf("%.4f", c.want) {
			t.Errorf("Jain(%v) = %v, want %v", c.xs, got, c.want)
		}
	}
}
