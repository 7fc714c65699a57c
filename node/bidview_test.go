package node

import (
	"reflect"
	"testing"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
)

// An open bid's constraints are shown, not left empty.
func TestBidConstraintsAreShown(t *testing.T) {
	for _, tc := range []struct {
		in   market.Constraints
		want api.Constraints
	}{
		{market.Constraints{}, api.Constraints{}},
		{market.Constraints{Regions: []string{"eu"}, Labels: []string{"gpu=a100", "zone=b"}},
			api.Constraints{Region: "eu", Labels: map[string]string{"gpu": "a100", "zone": "b"}}},
		{market.Constraints{Regions: []string{"eu", "us"}}, api.Constraints{Region: "eu,us"}},
	} {
		if got := bidConstraints(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%+v: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
