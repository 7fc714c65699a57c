package gateway_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/bourse-net/bourse/gateway"
)

type table map[string][]gateway.Replica

func (t table) Replicas(name string) ([]gateway.Replica, bool) {
	r, ok := t[name]
	return r, ok
}

// The gateway is an http.Handler: it names the service from the path or
// the host and answers 404 or 503 with the reason when it cannot route.
func ExampleGateway() {
	g, err := gateway.New(gateway.Config{}, nil, table{"hello": nil})
	if err != nil {
		panic(err)
	}
	for _, url := range []string{"/svc/nope/x", "http://hello.svc.localhost/"} {
		w := httptest.NewRecorder()
		g.ServeHTTP(w, httptest.NewRequest("GET", url, nil))
		fmt.Print(w.Code, " ", w.Body.String())
	}
	// Output:
	// 404 unknown service "nope"
	// 503 service "hello" has no live replica placed
}

func ExampleJain() {
	fmt.Printf("%.2f %.2f\n", gateway.Jain([]float64{10, 10, 10}), gateway.Jain([]float64{30, 0, 0}))
	// Output: 1.00 0.33
}
