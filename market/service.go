package market

import (
	"bytes"
	"cmp"
	"slices"

	"github.com/bourse-net/bourse/wallet"
)

// Services. A service replica is placed like a job: its need is a Bid
// that is never signed nor gossiped (the chain builds it from the service
// record): Client is the service's owner, Resources the per-replica
// resources, TimeoutMs the service's billing period and MaxPrice its price
// ceiling per replica and period. PriceFor(offer, need) is then the
// price of one period on that offer.

// CheckPlacement is CheckMatch for one service replica: offer o is well
// formed, live and correctly signed at blockTime, and can take need (see
// checkPair: not the owner's own offer, collateral, not superseded,
// executor, region, labels, reputation, resources within Total minus the
// chain's reservations, price within need.MaxPrice). It returns the price
// of one period, or a *MatchError naming the first rule broken.
func CheckPlacement(chainID string, o *Offer, need *Bid, view ChainView, blockTime int64) (uint64, error) {
	fail := func(code Code, err error, detail string) error {
		return &MatchError{Code: code, Offer: o.ID(), Detail: detail, Err: err}
	}
	if err := o.Validate(blockTime); err != nil {
		return 0, fail(CodeOf(err), err, "offer")
	}
	if err := o.Verify(chainID); err != nil {
		return 0, fail(CodeSignature, err, "offer")
	}
	ps, ok := view.Provider(o.ProviderAddress())
	if f := checkPair(o, need, ps, ok, view.MinCollateral(), ps.Reserved); len(f) > 0 {
		return 0, fail(f[0].Code, nil, f[0].Detail)
	}
	price, err := PriceFor(o, need)
	if err != nil {
		return 0, fail(CodePrice, err, "price")
	}
	return price, nil
}

// ReplicaNeed asks PlaceReplicas for Count more replicas of one service.
type ReplicaNeed struct {
	// Service identifies the service (opaque here; placements carry it).
	Service [32]byte
	// Need is the unsigned need bid (see the package comment above).
	Need Bid
	// Count is how many replicas to place.
	Count int
	// Hosting are the providers already holding a replica: a new replica
	// goes to another provider when one can take it.
	Hosting []wallet.Address
}

// Placement is one replica PlaceReplicas placed.
type Placement struct {
	Service [32]byte
	Offer   *Offer
	Price   uint64
}

// PlaceReplicas places needs (in the order given) on offers, at most max
// replicas in all. For each replica it takes, among the offers that pass
// CheckPlacement's pair rules against the chain's reservations plus the
// earlier placements of this call, first those of providers that hold no
// replica of the service yet (a replica set spread over providers survives
// one provider's failure), then the best by the need's preference:
// cheapest (price), least-loaded (load after placement), nearest (earliest
// region in Need.Near, then load) or balanced (price, then load); ties go
// to the lower provider address. Only each provider's newest offer counts.
// Offers must be verified by the caller (the Book does); the chain checks
// every placement again. Same inputs, same output.
func PlaceReplicas(needs []ReplicaNeed, offers []*Offer, view ChainView, blockTime int64, max int) []Placement {
	newest := map[wallet.Address]*Offer{}
	for _, o := range offers {
		if o.Expires <= blockTime {
			continue
		}
		a := o.ProviderAddress()
		if cur, ok := newest[a]; !ok || o.Seq > cur.Seq {
			newest[a] = o
		}
	}
	type cand struct {
		o        *Offer
		addr     wallet.Address
		ps       ProviderState
		ok       bool
		reserved Resources
	}
	cands := make([]*cand, 0, len(newest))
	for a, o := range newest {
		ps, ok := view.Provider(a)
		if !ok {
			continue
		}
		cands = append(cands, &cand{o: o, addr: a, ps: ps, ok: ok, reserved: ps.Reserved})
	}
	slices.SortFunc(cands, func(a, b *cand) int { return bytes.Compare(a.addr[:], b.addr[:]) })
	var out []Placement
	for _, nd := range needs {
		hosting := map[wallet.Address]bool{}
		for _, a := range nd.Hosting {
			hosting[a] = true
		}
		for range nd.Count {
			if len(out) >= max {
				return out
			}
			var best *cand
			var bestPrice uint64
			better := func(c *cand, price uint64) bool {
				if best == nil {
					return true
				}
				if hb, hc := hosting[best.addr], hosting[c.addr]; hb != hc {
					return !hc
				}
				loadOf := func(x *cand) uint32 { return x.o.Load }
				switch nd.Need.Preference {
				case PreferCheapest, PreferBalanced:
					if r := cmp.Compare(price, bestPrice); r != 0 {
						return r < 0
					}
				case PreferNearest:
					if r := cmp.Compare(nearIndex(nd.Need.Near, c.o.Region), nearIndex(nd.Need.Near, best.o.Region)); r != 0 {
						return r < 0
					}
				}
				if r := cmp.Compare(loadOf(c), loadOf(best)); r != 0 {
					return r < 0
				}
				if r := cmp.Compare(price, bestPrice); r != 0 {
					return r < 0
				}
				return false // cands are in address order: the first stays
			}
			for _, c := range cands {
				if len(checkPair(c.o, &nd.Need, c.ps, c.ok, view.MinCollateral(), c.reserved)) > 0 {
					continue
				}
				price, err := PriceFor(c.o, &nd.Need)
				if err != nil {
					continue
				}
				if better(c, price) {
					best, bestPrice = c, price
				}
			}
			if best == nil {
				break
			}
			r, err := best.reserved.Add(nd.Need.Resources)
			if err != nil {
				break
			}
			best.reserved = r
			hosting[best.addr] = true
			out = append(out, Placement{Service: nd.Service, Offer: best.o, Price: bestPrice})
		}
	}
	return out
}

func nearIndex(near []string, region string) int {
	for i, r := range near {
		if r == region {
			return i
		}
	}
	return len(near)
}

// ValidateStrings checks a service's args (env false) or KEY=VALUE
// environment (env true) with the bounds of a job's.
func ValidateStrings(field string, xs []string, env bool) error { return validStrings(field, xs, env) }
