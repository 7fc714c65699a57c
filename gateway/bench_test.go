package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/bourse-net/bourse/worker"
)

// benchClient keeps enough idle connections for RunParallel.
var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func benchGet(b *testing.B, url string) {
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := benchClient.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkGatewayHello: HTTP through the gateway to 3 replicas (svcprog
// /hello) over libp2p, 4×GOMAXPROCS clients. Compare BenchmarkDirectHello.
func BenchmarkGatewayHello(b *testing.B) {
	var ps []*provider
	var reps []Replica
	for range 3 {
		p := newProvider(b, ProviderConfig{})
		reps = append(reps, p.start(b, 10*time.Second, 2))
		ps = append(ps, p)
	}
	_, srv := newGateway(b, Config{}, &routes{m: map[string][]Replica{"app": reps}}, ps...)
	b.ResetTimer()
	benchGet(b, srv.URL+"/svc/app/hello")
}

// BenchmarkDirectHello: the same handler served over plain HTTP by one
// replica, no gateway.
func BenchmarkDirectHello(b *testing.B) {
	p := newProvider(b, ProviderConfig{})
	rep := p.start(b, 10*time.Second, 2)
	svc, _ := p.lookup(rep.LeaseID)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := svc.Handle(r.Context(), &worker.Request{Method: r.Method, Target: r.URL.RequestURI()})
		if err != nil {
			http.Error(w, err.Error(), 503)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(resp.Body)))
		w.WriteHeader(resp.Status)
		w.Write(resp.Body)
	}))
	b.Cleanup(srv.Close)
	b.ResetTimer()
	benchGet(b, srv.URL+"/hello")
}
