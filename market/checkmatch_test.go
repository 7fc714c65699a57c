package market

import (
	"errors"
	"testing"

	"github.com/bourse-net/bourse/wallet"
)

// One Match per rule of CheckMatch, each broken alone, plus the valid
// boundaries.
func TestCheckMatchRules(t *testing.T) {
	prov, client, other := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	type tc struct {
		name      string
		offer     func(*Offer)
		bid       func(*Bid)
		after     func(*Match) // after signing
		view      func(*fakeView, *Match)
		chain     string
		blockTime int64
		want      Code // "" = valid
	}
	cases := []tc{
		{name: "valid"},
		{name: "valid: balance exactly the escrow", view: func(v *fakeView, m *Match) { v.balances[client.Address()] = m.Bid.MaxPrice }},
		{name: "valid: fills the remaining capacity exactly", view: func(v *fakeView, m *Match) {
			v.providers[prov.Address()] = ProviderState{Collateral: 500, Reputation: 800, Reserved: Resources{CPU: 3000, MemMiB: 8192 - 512, DiskMiB: 10240 - 100}}
		}},
		{name: "valid: price exactly the max", bid: func(b *Bid) { b.MaxPrice = 760 }},
		{name: "malformed bid: replica index at the count", bid: func(b *Bid) { b.Replicas, b.Replica = 2, 2 }, want: CodeField},
		{name: "malformed bid: unknown executor", bid: func(b *Bid) { b.Executor = "vm" }, want: CodeExecutor},
		{name: "malformed offer: free above total", offer: func(o *Offer) { o.Free.CPU = 5000 }, want: CodeResources},
		{name: "offer signature", after: func(m *Match) { m.Offer.Load = 1 }, want: CodeSignature},
		{name: "offer signed by another key", after: func(m *Match) { m.Offer.Sig = other.Sign(testChain, MsgOffer, mustSigning(t, &m.Offer)) }, want: CodeSignature},
		{name: "bid signature", after: func(m *Match) { m.Bid.Payload.Manifest = make([]byte, 32) }, want: CodeSignature},
		{name: "bid signature missing", after: func(m *Match) { m.Bid.Sig = nil }, want: CodeSignature},
		{name: "chain id", chain: "another-chain", want: CodeSignature},
		{name: "offer expired at block time", offer: func(o *Offer) { o.Expires = t0 + 10_000 }, blockTime: t0 + 10_000, want: CodeExpired},
		{name: "bid expired at block time", bid: func(b *Bid) { b.MatchBy = t0 + 5_000 }, blockTime: t0 + 5_000, want: CodeExpired},
		{name: "offer expiry too far ahead of block time", offer: func(o *Offer) { o.Expires = t0 + MaxOfferTTL + 1 }, want: CodeExpiry},
		{name: "bid already matched", view: func(v *fakeView, m *Match) { v.closed[m.ID()] = true }, want: CodeBidUsed},
		{name: "client is the provider (self-match)", after: func(m *Match) {
			b := m.Bid
			b.Client, b.Sig = wallet.PublicKey{}, nil
			m.Bid = *signedBid(t, prov, b)
		}, want: CodeSelfMatch},
		{name: "offer superseded: the chain matched a newer seq", view: func(v *fakeView, m *Match) {
			v.providers[prov.Address()] = ProviderState{Collateral: 500, Reputation: 800, NewestOfferSeq: 2}
		}, want: CodeSuperseded},
		{name: "valid: offer seq equal to the newest matched", view: func(v *fakeView, m *Match) {
			v.providers[prov.Address()] = ProviderState{Collateral: 500, Reputation: 800, NewestOfferSeq: 1}
		}},
		{name: "provider not registered", view: func(v *fakeView, m *Match) { delete(v.providers, prov.Address()) }, want: CodeCollateral},
		{name: "collateral below minimum", view: func(v *fakeView, m *Match) { v.minColl = 501 }, want: CodeCollateral},
		{name: "executor not offered", bid: func(b *Bid) { b.Executor = ExecDocker }, want: CodeExecutor},
		{name: "region not allowed", bid: func(b *Bid) { b.Constraints.Regions = []string{"us-east"} }, want: CodeRegion},
		{name: "offer without region, bid wants one", offer: func(o *Offer) { o.Region = "" }, want: CodeRegion},
		{name: "label missing", bid: func(b *Bid) { b.Constraints.Labels = []string{"arch=amd64", "ssd=yes"} }, want: CodeLabel},
		{name: "reputation too low", bid: func(b *Bid) { b.Constraints.MinReputation = 801 }, want: CodeReputation},
		{name: "more cpu than the offer has", bid: func(b *Bid) { b.Resources.CPU = 4001 }, want: CodeResources},
		{name: "capacity already reserved on chain", view: func(v *fakeView, m *Match) {
			v.providers[prov.Address()] = ProviderState{Collateral: 500, Reputation: 800, Reserved: Resources{CPU: 3001}}
		}, want: CodeResources},
		{name: "gpu the offer lacks", bid: func(b *Bid) { b.Resources.GPUs = 1 }, want: CodeResources},
		{name: "gpu model mismatch", offer: func(o *Offer) { o.Total.GPUs, o.Total.GPUModel = 2, "a100" }, bid: func(b *Bid) {
			b.Resources.GPUs, b.Resources.GPUModel = 1, "h100"
		}, want: CodeResources},
		{name: "price above max", bid: func(b *Bid) { b.MaxPrice = 759 }, want: CodePrice},
		{name: "price field above the terms", after: func(m *Match) { m.Price++ }, want: CodeMismatch},
		{name: "price field below the terms", after: func(m *Match) { m.Price-- }, want: CodeMismatch},
		{name: "client cannot cover the escrow", view: func(v *fakeView, m *Match) { v.balances[client.Address()] = m.Bid.MaxPrice - 1 }, want: CodeBalance},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, b := baseOffer(1), baseBid(1)
			b.MaxPrice = 10_000
			if c.offer != nil {
				c.offer(&o)
			}
			if c.bid != nil {
				c.bid(&b)
			}
			m := Match{Offer: *signedOffer(t, prov, o), Bid: *signedBid(t, client, b)}
			// 1 core × 60 s × 10 + ceil(512 MiB × 60 s × 2 / 1024) + 100 = 600 + 60 + 100
			m.Price, _ = PriceFor(&m.Offer, &m.Bid)
			if c.after != nil {
				c.after(&m)
			}
			v := newFakeView(500)
			v.providers[prov.Address()] = ProviderState{Collateral: 500, Reputation: 800}
			v.balances[client.Address()] = 1 << 40
			if c.view != nil {
				c.view(v, &m)
			}
			chain, bt := testChain, t0
			if c.chain != "" {
				chain = c.chain
			}
			if c.blockTime != 0 {
				bt = c.blockTime
			}
			err := CheckMatch(chain, &m, v, bt)
			if got := CodeOf(err); got != c.want {
				t.Fatalf("CheckMatch = %v (code %q), want code %q", err, got, c.want)
			}
			if err != nil {
				var me *MatchError
				if !errors.As(err, &me) || me.Bid != m.ID() {
					t.Fatalf("error %v is not a *MatchError naming bid %s", err, m.ID())
				}
			}
		})
	}
	if got := CodeOf(CheckMatch(testChain, nil, newFakeView(0), t0)); got != CodeDecode {
		t.Fatalf("nil match: code %q, want %q", got, CodeDecode)
	}
}

func TestPriceOfBaseIs760(t *testing.T) {
	o, b := baseOffer(1), baseBid(1)
	p, err := PriceFor(&o, &b)
	if err != nil || p != 760 {
		t.Fatalf("PriceFor = %d, %v; want 760", p, err)
	}
}

func mustSigning(t *testing.T, o *Offer) []byte {
	t.Helper()
	msg, err := o.SigningBytes()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}
