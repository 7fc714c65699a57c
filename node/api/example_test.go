package api_test

import (
	"errors"
	"fmt"

	"github.com/bourse-net/bourse/node/api"
)

// A job spec as node/api's package doc shows it: defaults fill what is
// left out, and a bad field is a *SpecError naming it.
func ExampleParseJobSpec() {
	spec, err := api.ParseJobSpec([]byte(`
name: hello
executor: wasm
payload: hello.wasm
args: ["world"]
env: {GREETING: "hello"}
resources: {cpu: 250, memory: 64, disk: 16}
max_price: 2000000
timeout: 30s
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(spec.Name, spec.Executor, spec.Payload, spec.Args)
	fmt.Printf("%+v\n", spec.Resources)
	fmt.Println(spec.Timeout, spec.Deadline, spec.Placement, spec.Replicas)

	_, err = api.ParseJobSpec([]byte("max_price: 1\nresources: {cpu: -5}\n"))
	var se *api.SpecError
	fmt.Println(errors.As(err, &se), se.Field, errors.Is(err, api.ErrBadRequest))
	// Output:
	// hello wasm hello.wasm [world]
	// {CPU:250 Memory:64 Disk:16 GPUs:0}
	// 30s 1m0s cheapest 1
	// true resources.cpu true
}
