package market

import "testing"

// What a validator spends per Match in a block (two signature checks
// dominate).
func BenchmarkCheckMatch(b *testing.B) {
	prov, client := testKey(b, 1), testKey(b, 2)
	m := Match{Offer: *signedOffer(b, prov, baseOffer(1)), Bid: *signedBid(b, client, baseBid(1))}
	m.Price, _ = PriceFor(&m.Offer, &m.Bid)
	v := newFakeView(0)
	v.providers[prov.Address()] = ProviderState{Collateral: 1}
	v.balances[client.Address()] = 1 << 40
	for b.Loop() {
		if err := CheckMatch(testChain, &m, v, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// What a gossip validator spends per bid: decode, validate, verify, insert.
func BenchmarkBookAddBid(b *testing.B) {
	client := testKey(b, 2)
	var msgs [][]byte
	for i := 0; i < 1024; i++ {
		data, err := signedBid(b, client, baseBid(uint64(i))).Encode()
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, data)
	}
	i := 0
	var bk *Book
	for b.Loop() {
		if i%len(msgs) == 0 {
			var err error
			if bk, err = NewBook(DefaultBookConfig(testChain)); err != nil {
				b.Fatal(err)
			}
			bk.cfg.MaxBidsPerClient = len(msgs)
		}
		if err := bk.Add(KindBid, msgs[i%len(msgs)], t0); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
