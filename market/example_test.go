package market_test

import (
	"crypto/sha256"
	"fmt"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/wallet"
)

// state is a one-provider, one-client chain state.
type state struct {
	provider wallet.Address
	client   wallet.Address
}

func (s state) Provider(a wallet.Address) (market.ProviderState, bool) {
	return market.ProviderState{Collateral: 1000, Reputation: 900}, a == s.provider
}
func (s state) Spendable(a wallet.Address) uint64 {
	if a == s.client {
		return 1_000_000
	}
	return 0
}
func (s state) BidClosed(market.BidID) bool                    { return false }
func (s state) MinCollateral() uint64                          { return 500 }
func (s state) ReplicaProviders(market.BidID) []wallet.Address { return nil }

func key(b byte) wallet.PrivateKey {
	seed := sha256.Sum256([]byte{b})
	k, _ := wallet.KeyFromSeed(seed[:])
	return k
}

// A provider offers capacity, a client bids for a job, the proposer
// matches them and a validator checks the match.
func Example() {
	const chainID, now = "bourse-example", int64(1_800_000_000_000)
	prov, client := key(1), key(2)

	offer := &market.Offer{
		PeerID: "12D3KooWprovider", Seq: 1, Expires: now + 60_000,
		Total:     market.Resources{CPU: 4000, MemMiB: 8192},
		Free:      market.Resources{CPU: 4000, MemMiB: 8192},
		Executors: []string{market.ExecWASM},
		Terms:     market.PriceTerms{PerCPUSecond: 10, PerGiBSecond: 2, PerJob: 100},
		Region:    "eu-west",
	}
	wasm := sha256.Sum256([]byte("hello.wasm"))
	bid := &market.Bid{
		Executor:  market.ExecWASM,
		Payload:   market.Payload{SHA256: wasm[:], Size: 1234, Peer: "12D3KooWclient"},
		Resources: market.Resources{CPU: 1000, MemMiB: 512},
		MaxPrice:  5000, MatchBy: now + 30_000, TimeoutMs: 60_000,
		Preference: market.PreferCheapest, Replicas: 1,
	}
	if err := offer.Sign(chainID, prov); err != nil {
		panic(err)
	}
	if err := bid.Sign(chainID, client); err != nil {
		panic(err)
	}

	book, _ := market.NewBook(market.DefaultBookConfig(chainID))
	fmt.Println("offer:", book.AddOffer(offer, now))
	fmt.Println("bid:", book.AddBid(bid, now))

	view := state{provider: prov.Address(), client: client.Address()}
	matches := market.Matcher{}.Match(book.Snapshot(), view, now+1000, [32]byte{}, 100)
	for _, m := range matches {
		fmt.Println("price", m.Price, "escrow", m.Escrow())
		fmt.Println("check:", market.CheckMatch(chainID, &m, view, now+1000))
		p, _ := market.Settle(&m, market.Usage{CPUMs: 30_000, MemMiBMs: 512 * 30_000})
		fmt.Println("provider paid", p.Provider, "client refunded", p.Refund)
	}
	// Output:
	// offer: <nil>
	// bid: <nil>
	// price 760 escrow 5000
	// check: <nil>
	// provider paid 430 client refunded 4570
}
