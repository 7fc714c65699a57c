package chain

import (
	"errors"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/market"
)

// proposerIndex is the index in n.keys of the next block's proposer.
func (n *testNet) proposerIndex() int {
	n.t.Helper()
	prop := n.proposer().Address()
	for i, k := range n.keys {
		if k.Address() == prop {
			return i
		}
	}
	n.t.Fatal("no proposer key")
	return -1
}

// forcedBlock is the next block holding exactly txs, proposed by the
// rightful proposer, with every header field but the state root right: what
// a proposer that skips BuildBlock's filtering would send.
func (n *testNet) forcedBlock(txs [][]byte) *Block {
	n.t.Helper()
	b := &Block{Header: Header{ChainID: testChainID, Height: n.st.Height() + 1, Time: n.time + n.step,
		PrevHash: n.prevHash, Proposer: n.proposer().Address(), LastCommitHash: sha256Sum(nil)}, Txs: txs}
	vals, err := n.st.ValidatorsAt(b.Header.Height)
	if err != nil {
		n.t.Fatal(err)
	}
	b.Header.ValidatorsHash = ValidatorsHash(vals)
	b.Header.TxsRoot = TxsRoot(txs)
	return b
}

// checkMatchRefused asserts that a block of txs (whose last one is the
// Match of job) is refused by Execute with ErrInvalidBlock naming the job
// and, if code is set, carrying CheckMatch's code, and that the state did
// not move.
func checkMatchRefused(t *testing.T, n *testNet, txs [][]byte, job market.BidID, code market.Code, msg string) {
	t.Helper()
	root := n.st.Root()
	_, err := Execute(n.st, n.forcedBlock(txs), ExecOptions{SkipStateRootCheck: true})
	switch {
	case !errors.Is(err, ErrInvalidBlock):
		t.Fatalf("Execute = %v, want ErrInvalidBlock", err)
	case !strings.Contains(err.Error(), job.String()):
		t.Fatalf("error %q does not name job %s", err, job)
	case code != "" && market.CodeOf(err) != code:
		t.Fatalf("error %q has code %q, want %q", err, market.CodeOf(err), code)
	case msg != "" && !strings.Contains(err.Error(), msg):
		t.Fatalf("error %q does not say %q", err, msg)
	}
	if n.st.Root() != root {
		t.Fatal("a refused block modified the state")
	}
}

// refuseMatch checks that a block holding raw (a Match of job) is refused
// with code, then commits the block BuildBlock makes of it, which must
// leave the Match out.
func (n *testNet) refuseMatch(t *testing.T, raw []byte, job market.BidID, code market.Code) {
	t.Helper()
	checkMatchRefused(t, n, [][]byte{raw}, job, code, "")
	blk, _ := n.block(raw)
	if len(blk.Txs) != 0 {
		t.Fatalf("BuildBlock kept a refused match: %d txs", len(blk.Txs))
	}
}

// TestExecuteRefusesBlockWithInvalidMatch: one Match per rule of
// market.CheckMatch (the rules of market's TestCheckMatchRules, here against
// the chain's state as of the Match's position in the block) and per
// envelope rule, each broken alone. Every one makes Execute refuse the
// whole block with ErrInvalidBlock naming the job; BuildBlock, given the
// same transactions, leaves the Match out and makes a block every
// validator accepts. The valid control case shows the fixture is sound.
func TestExecuteRefusesBlockWithInvalidMatch(t *testing.T) {
	const (
		prov   = 6 // registered with collateral 5000
		client = 7
		other  = 5 // a plain account, not a provider
		weak   = 4 // registered at the minimum, then slashed by a timeout
	)
	type tc struct {
		name     string
		provider int                                                            // offer's signer; 0 means prov
		offer    func(n *testNet, o *market.Offer)                              // before signing
		bid      func(n *testNet, o *market.Offer, b *market.Bid)               // before signing
		prep     func(t *testing.T, n *testNet, o *market.Offer, b *market.Bid) // blocks committed first
		match    func(n *testNet, m *MatchTx)                                   // after signing
		before   func(n *testNet, m *MatchTx) [][]byte                          // in the block, ahead of the match
		signer   func(n *testNet) int                                           // the match tx's sender; nil: the proposer
		envelope func(tx *Tx)                                                   // the match tx, before signing
		tamper   bool                                                           // flip a bit of the match tx's signature
		valid    bool
		code     market.Code // CheckMatch's code, "" for envelope failures
		msg      string
	}
	blockTime := func(n *testNet) int64 { return n.time + n.step }
	resign := func(n *testNet, m *MatchTx, chainID string) {
		if err := m.Offer.Sign(chainID, n.keys[prov]); err != nil {
			n.t.Fatal(err)
		}
	}
	cases := []tc{
		{name: "valid", valid: true},
		{name: "valid: fills the capacity left by a match earlier in the block", valid: true,
			bid: func(n *testNet, o *market.Offer, b *market.Bid) { b.Resources.CPU = 1000 },
			before: func(n *testNet, m *MatchTx) [][]byte {
				return [][]byte{n.matchTx(&m.Offer, n.bid(client, 50, 3000, 10_000))}
			}},
		// Expiry.
		{name: "offer expired at block time", code: market.CodeExpired,
			offer: func(n *testNet, o *market.Offer) { o.Expires = blockTime(n) }},
		{name: "bid expired at block time", code: market.CodeExpired,
			bid: func(n *testNet, o *market.Offer, b *market.Bid) { b.MatchBy = blockTime(n) }},
		{name: "offer expiry too far ahead of block time", code: market.CodeExpiry,
			offer: func(n *testNet, o *market.Offer) { o.Expires = blockTime(n) + market.MaxOfferTTL + 1 }},
		// Price.
		{name: "price above the bid's max", code: market.CodePrice,
			bid: func(n *testNet, o *market.Offer, b *market.Bid) {
				p, err := market.PriceFor(o, b)
				if err != nil {
					n.t.Fatal(err)
				}
				b.MaxPrice = p - 1
			}},
		{name: "price field above the terms", code: market.CodeMismatch, match: func(n *testNet, m *MatchTx) { m.Price++ }},
		{name: "price field below the terms", code: market.CodeMismatch, match: func(n *testNet, m *MatchTx) { m.Price-- }},
		// Capacity.
		{name: "capacity double-booked in the same block", code: market.CodeResources,
			before: func(n *testNet, m *MatchTx) [][]byte {
				return [][]byte{n.matchTx(&m.Offer, n.bid(client, 50, 3500, 10_000))}
			}},
		{name: "capacity reserved by an open match", code: market.CodeResources,
			prep: func(t *testing.T, n *testNet, o *market.Offer, b *market.Bid) {
				n.block(n.matchTx(o, n.bid(client, 50, 3500, 10_000))) // the same offer: a newer one would supersede it
			}},
		{name: "more cpu than the offer has", code: market.CodeResources,
			bid: func(n *testNet, o *market.Offer, b *market.Bid) { b.Resources.CPU = 4001 }},
		// Client balance.
		{name: "client balance too low after a transfer earlier in the block", code: market.CodeBalance,
			before: func(n *testNet, m *MatchTx) [][]byte {
				return [][]byte{n.tx(client, 1, func(tx *Tx) {
					tx.Transfer = &Transfer{To: n.keys[other].Address(), Amount: n.balance(client) - 1 - (m.Bid.MaxPrice - 1)}
				})}
			}},
		{name: "client balance too low", code: market.CodeBalance,
			prep: func(t *testing.T, n *testNet, o *market.Offer, b *market.Bid) {
				n.block(n.tx(client, 1, func(tx *Tx) {
					tx.Transfer = &Transfer{To: n.keys[other].Address(), Amount: n.balance(client) - 1 - (b.MaxPrice - 1)}
				}))
			}},
		// Provider.
		{name: "provider not registered", provider: other, code: market.CodeCollateral},
		{name: "provider collateral below the minimum", provider: weak, code: market.CodeCollateral,
			prep: func(t *testing.T, n *testNet, o *market.Offer, b *market.Bid) {
				n.block(n.tx(weak, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: n.gen.Params.MinProviderCollateral} }))
				jb := n.bid(client, 60, 100, 1000)
				n.block(n.matchTx(n.offer(weak, 60), jb))
				m, _, _ := n.st.Match(jb.ID())
				n.step = m.Deadline - n.time
				n.block() // the job times out, 10% of the collateral burns
				n.step = 1000
				if p, _, _ := n.st.Provider(n.keys[weak].Address()); p.TimedOut != 1 || p.Collateral >= n.gen.Params.MinProviderCollateral {
					t.Fatalf("fixture: provider %+v not below the minimum", p)
				}
			}},
		// The bid's state.
		{name: "bid already matched", code: market.CodeBidUsed,
			prep: func(t *testing.T, n *testNet, o *market.Offer, b *market.Bid) {
				n.block(n.matchTx(n.offer(prov, 50), b))
			}},
		{name: "bid matched earlier in the same block", code: market.CodeBidUsed,
			before: func(n *testNet, m *MatchTx) [][]byte { return [][]byte{n.matchTx(n.offer(prov, 50), &m.Bid)} }},
		{name: "bid cancelled", code: market.CodeBidUsed,
			prep: func(t *testing.T, n *testNet, o *market.Offer, b *market.Bid) {
				n.block(n.tx(client, 1, func(tx *Tx) { tx.BidCancel = &BidCancel{Bid: *b} }))
			}},
		// Signatures and chain id inside the match.
		{name: "offer signed for another chain", code: market.CodeSignature,
			match: func(n *testNet, m *MatchTx) { resign(n, m, "another-chain") }},
		{name: "bid signed for another chain", code: market.CodeSignature,
			match: func(n *testNet, m *MatchTx) {
				if err := m.Bid.Sign("another-chain", n.keys[client]); err != nil {
					n.t.Fatal(err)
				}
			}},
		{name: "offer signature does not cover it", code: market.CodeSignature,
			match: func(n *testNet, m *MatchTx) { m.Offer.Load = 1 }},
		{name: "bid signature broken", code: market.CodeSignature,
			match: func(n *testNet, m *MatchTx) { m.Bid.Sig[0] ^= 1 }},
		// Constraints.
		{name: "executor not offered", code: market.CodeExecutor,
			bid: func(n *testNet, o *market.Offer, b *market.Bid) { b.Executor = market.ExecDocker }},
		{name: "region not allowed", code: market.CodeRegion,
			bid: func(n *testNet, o *market.Offer, b *market.Bid) { b.Constraints.Regions = []string{"eu-west"} }},
		{name: "label missing", code: market.CodeLabel,
			bid: func(n *testNet, o *market.Offer, b *market.Bid) { b.Constraints.Labels = []string{"ssd=yes"} }},
		{name: "reputation too low", code: market.CodeReputation,
			bid: func(n *testNet, o *market.Offer, b *market.Bid) { b.Constraints.MinReputation = 501 }},
		// The envelope of the match transaction.
		{name: "match tx not from the proposer", msg: "sent by the block proposer",
			signer: func(n *testNet) int { return (n.proposerIndex() + 1) % n.vals }},
		{name: "match tx for another chain", msg: "chain id", envelope: func(tx *Tx) { tx.ChainID = "another-chain" }},
		{name: "match tx nonce gap", msg: "nonce", envelope: func(tx *Tx) { tx.Nonce++ }},
		{name: "match tx signature", msg: "signature", tamper: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := newTestNet(t, 8, 4)
			n.block(n.tx(prov, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 5000} }))
			p := prov
			if c.provider != 0 {
				p = c.provider
			}
			o := n.offer(p, 1)
			if c.offer != nil {
				c.offer(n, o)
				if err := o.Sign(testChainID, n.keys[p]); err != nil {
					t.Fatal(err)
				}
			}
			b := n.bid(client, 1, 1000, 10_000)
			if c.bid != nil {
				c.bid(n, o, b)
				if err := b.Sign(testChainID, n.keys[client]); err != nil {
					t.Fatal(err)
				}
			}
			if c.prep != nil {
				c.prep(t, n, o, b)
			}
			price, err := market.PriceFor(o, b)
			if err != nil {
				t.Fatal(err)
			}
			m := &MatchTx{Offer: *o, Bid: *b, Price: price}
			if c.match != nil {
				c.match(n, m)
			}
			var txs [][]byte
			if c.before != nil {
				txs = c.before(n, m)
			}
			signer := n.proposerIndex()
			if c.signer != nil {
				signer = c.signer(n)
			}
			raw := n.tx(signer, 0, func(tx *Tx) {
				tx.Match = m
				if c.envelope != nil {
					c.envelope(tx)
				}
			})
			if c.tamper {
				raw[len(raw)-1] ^= 0x55
			}
			txs = append(txs, raw)
			job := m.ID()

			if c.valid {
				res, err := Execute(n.st, n.forcedBlock(txs), ExecOptions{SkipStateRootCheck: true})
				if err != nil {
					t.Fatalf("valid match refused: %v", err)
				}
				if tr := res.TxResults[len(res.TxResults)-1]; tr.Kind != KindMatch || tr.Code != 0 {
					t.Fatalf("valid match result %+v", tr)
				}
			} else {
				checkMatchRefused(t, n, txs, job, c.code, c.msg)
			}

			// The proposer's BuildBlock keeps the match exactly when it is
			// valid, keeps what was ahead of it, and validators accept it.
			blk, res := n.block(txs...)
			kept := len(blk.Txs) > 0 && TxHash(blk.Txs[len(blk.Txs)-1]) == TxHash(raw)
			if kept != c.valid {
				t.Fatalf("BuildBlock kept the match: %v, want %v", kept, c.valid)
			}
			if len(blk.Txs) != len(txs)-1 && !c.valid {
				t.Fatalf("BuildBlock kept %d of the %d txs ahead of the match", len(blk.Txs), len(txs)-1)
			}
			for _, tr := range res.TxResults {
				if tr.Kind == KindMatch && tr.Code != 0 {
					t.Fatalf("a committed match failed: %+v", tr)
				}
			}
			rec, ok, err := n.st.Match(job)
			if err != nil {
				t.Fatal(err)
			}
			if c.valid != (ok && rec.Match.Offer.ID() == m.Offer.ID()) {
				t.Fatalf("match record of job %s present: %v (offer %s), want %v", job, ok, rec.Match.Offer.ID(), c.valid)
			}
		})
	}
}

// TestBuildBlockDropsInvalidMatchAndLaterNonces mirrors the node's
// proposer: its own mempool transaction, then Matches signed with
// consecutive nonces. A refused Match is dropped; it used no nonce, so the
// proposer's later Matches no longer fit and are dropped too, while its
// earlier transactions and other senders' transactions stay. At the next
// height the dropped bids, matched again with fresh nonces, are committed.
func TestBuildBlockDropsInvalidMatchAndLaterNonces(t *testing.T) {
	const prov, client, other = 6, 7, 5
	n := newTestNet(t, 8, 4)
	n.block(n.tx(prov, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 5000} }))
	prop := n.proposerIndex()

	own := transfer(n, prop, other, 10, 1) // proposer nonce k
	o := n.offer(prov, 1)
	b1, b2, b3, b4 := n.bid(client, 1, 500, 10_000), n.bid(client, 2, 500, 10_000), n.bid(client, 3, 500, 10_000), n.bid(client, 4, 500, 10_000)
	m1 := n.matchTx(o, b1)                 // k+1, valid
	bad := n.matchTx(n.offer(prov, 2), b1) // k+2, bid already matched by m1
	m3 := n.matchTx(o, b3)                 // k+3, valid but its nonce no longer fits
	t1 := transfer(n, other, client, 5, 1) // another sender: stays
	m4 := n.matchTx(o, b4)                 // k+4, dropped as well
	cands := [][]byte{own, m1, bad, m3, t1, m4}
	checkMatchRefused(t, n, cands[:3], b1.ID(), market.CodeBidUsed, "")

	blk, res := n.block(cands...)
	want := [][]byte{own, m1, t1}
	if len(blk.Txs) != len(want) {
		t.Fatalf("block has %d txs, want %d", len(blk.Txs), len(want))
	}
	for i := range want {
		if TxHash(blk.Txs[i]) != TxHash(want[i]) {
			t.Fatalf("tx %d is not the expected one", i)
		}
		if res.TxResults[i].Code != 0 {
			t.Fatalf("tx %d failed: %s", i, res.TxResults[i].Log)
		}
	}
	for _, id := range []market.BidID{b3.ID(), b4.ID()} {
		if _, ok, _ := n.st.Match(id); ok {
			t.Fatalf("dropped match of %s was committed", id)
		}
	}

	// Next height: the matcher places the dropped bids again.
	blk, res = n.block(n.matchTx(o, b3), n.matchTx(o, b4), n.matchTx(o, b2))
	if len(blk.Txs) != 3 {
		t.Fatalf("re-matched block has %d txs, want 3", len(blk.Txs))
	}
	for i, tr := range res.TxResults {
		if tr.Code != 0 {
			t.Fatalf("re-matched tx %d failed: %s", i, tr.Log)
		}
	}
	p, _, _ := n.st.Provider(n.keys[prov].Address())
	if p.Open != 4 || p.Reserved.CPU != 2000 {
		t.Fatalf("provider after both blocks %+v, want 4 open matches reserving 2000 millicores", p)
	}
}

// TestBuildBlockDropsTrailingInvalidMatch: a refused Match last in the
// proposer's sequence costs nothing else.
func TestBuildBlockDropsTrailingInvalidMatch(t *testing.T) {
	const prov, client = 6, 7
	n := newTestNet(t, 8, 4)
	n.block(n.tx(prov, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 5000} }))
	o := n.offer(prov, 1)
	m1 := n.matchTx(o, n.bid(client, 1, 1500, 10_000))
	m2 := n.matchTx(o, n.bid(client, 2, 1500, 10_000))
	over := n.bid(client, 3, 1500, 10_000) // 4500 > the offer's 4000 millicores
	m3 := n.matchTx(o, over)
	checkMatchRefused(t, n, [][]byte{m1, m2, m3}, over.ID(), market.CodeResources, "")
	blk, _ := n.block(m1, m2, m3)
	if len(blk.Txs) != 2 || TxHash(blk.Txs[0]) != TxHash(m1) || TxHash(blk.Txs[1]) != TxHash(m2) {
		t.Fatalf("block has %d txs, want the two valid matches", len(blk.Txs))
	}
}
