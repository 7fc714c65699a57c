package chain

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/wallet"
)

func TestTransferMovesFundsAndPaysProposer(t *testing.T) {
	n := newTestNet(t, 6, 4)
	to := n.keys[5].Address()
	before0, before5 := n.balance(0), n.balance(5)
	prop := n.proposer()
	propIdx := -1
	for i, k := range n.keys {
		if k.Address() == prop.Address() {
			propIdx = i
		}
	}
	propBefore := n.balance(propIdx)
	_, res := n.block(n.tx(0, 7, func(tx *Tx) { tx.Transfer = &Transfer{To: to, Amount: 1234} }))
	if len(res.TxResults) != 1 || res.TxResults[0].Code != 0 {
		t.Fatalf("tx results %+v", res.TxResults)
	}
	if got, want := n.balance(0), before0-1234-7; got != want && propIdx != 0 {
		t.Fatalf("sender balance %d, want %d", got, want)
	}
	if got := n.balance(5); got != before5+1234 {
		t.Fatalf("recipient balance %d, want %d", got, before5+1234)
	}
	if propIdx != 0 {
		if got := n.balance(propIdx); got != propBefore+7 {
			t.Fatalf("proposer balance %d, want %d (+fee)", got, propBefore+7)
		}
	}
	acc, _ := n.st.Account(n.keys[0].Address())
	if acc.Nonce != 1 {
		t.Fatalf("nonce %d, want 1", acc.Nonce)
	}
}

// TestExecuteRejects lists blocks every validator must refuse.
func TestExecuteRejects(t *testing.T) {
	n := newTestNet(t, 6, 4)
	n.block(n.tx(0, 1, func(tx *Tx) { tx.Transfer = &Transfer{To: n.keys[1].Address(), Amount: 5} }))
	replay := n.blocks[0].Txs[0]
	signed := func(mut func(*Tx), key wallet.PrivateKey) []byte {
		acc, _ := n.st.Account(key.Address())
		tx := &Tx{ChainID: testChainID, Sender: key.Public(), Nonce: acc.Nonce, Fee: 1, Transfer: &Transfer{To: n.keys[2].Address(), Amount: 1}}
		mut(tx)
		if err := tx.Sign(key); err != nil {
			t.Fatal(err)
		}
		raw, _ := tx.Encode()
		return raw
	}
	badSig := func() []byte {
		tx := &Tx{ChainID: testChainID, Sender: n.keys[3].Public(), Nonce: 0, Fee: 1, Transfer: &Transfer{To: n.keys[2].Address(), Amount: 1}}
		_ = tx.Sign(n.keys[3])
		tx.Transfer.Amount = 2 // signed over 1
		raw, _ := tx.Encode()
		return raw
	}()
	tests := []struct {
		name    string
		txs     [][]byte
		mut     func(*Block)
		wantErr error
		wantMsg string
	}{
		{"replayed transaction", [][]byte{replay}, nil, ErrInvalidBlock, "nonce 0 already used"},
		{"wrong chain id in tx", [][]byte{signed(func(tx *Tx) { tx.ChainID = "other" }, n.keys[1])}, nil, ErrInvalidBlock, "chain id"},
		{"future nonce", [][]byte{signed(func(tx *Tx) { tx.Nonce += 3 }, n.keys[1])}, nil, ErrInvalidBlock, "nonce"},
		{"fee below minimum", [][]byte{signed(func(tx *Tx) { tx.Fee = 0 }, n.keys[1])}, nil, ErrInvalidBlock, "fee 0 below"},
		{"bad signature", [][]byte{badSig}, nil, ErrInvalidBlock, "bad signature"},
		{"wrong height", nil, func(b *Block) { b.Header.Height = 5 }, ErrInvalidBlock, "state is at height"},
		{"time not after previous", nil, func(b *Block) { b.Header.Time = n.time }, ErrInvalidBlock, "not after"},
		{"wrong chain id in header", nil, func(b *Block) { b.Header.ChainID = "x" }, ErrInvalidBlock, "chain id"},
		{"proposer not a validator", nil, func(b *Block) { b.Header.Proposer = n.keys[5].Address() }, ErrInvalidBlock, "not a validator"},
		{"validators hash", nil, func(b *Block) { b.Header.ValidatorsHash[0] ^= 1 }, ErrInvalidBlock, "validators hash"},
		{"txs root", nil, func(b *Block) { b.Header.TxsRoot[0] ^= 1 }, ErrInvalidBlock, "txs root"},
		{"state root", nil, func(b *Block) { b.Header.StateRoot[0] ^= 1 }, ErrStateRootMismatch, "state root"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &Block{Header: Header{ChainID: testChainID, Height: n.st.Height() + 1, Time: n.time + 1000,
				Proposer: n.proposer().Address(), LastCommitHash: sha256Sum(nil)}, Txs: tc.txs}
			vals, _ := n.st.ValidatorsAt(b.Header.Height)
			b.Header.ValidatorsHash = ValidatorsHash(vals)
			b.Header.TxsRoot = TxsRoot(b.Txs)
			res, err := Execute(n.st, b, ExecOptions{SkipStateRootCheck: true})
			if err == nil {
				b.Header.StateRoot = res.StateRoot
			}
			if tc.mut != nil {
				tc.mut(b)
			}
			root := n.st.Root()
			_, err = Execute(n.st, b, ExecOptions{})
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.wantErr, tc.wantMsg)
			}
			if n.st.Root() != root {
				t.Fatal("a refused block modified the state")
			}
		})
	}
}

// TestFailedBodyPaysFeeAndRevertsBody: a transfer of more than the balance
// is included, costs its fee and its nonce, and moves nothing.
func TestFailedBodyPaysFeeAndRevertsBody(t *testing.T) {
	n := newTestNet(t, 6, 4)
	before := n.balance(4)
	_, res := n.block(n.tx(4, 3, func(tx *Tx) { tx.Transfer = &Transfer{To: n.keys[5].Address(), Amount: before} }))
	if len(res.TxResults) != 1 || res.TxResults[0].Code != 1 || !strings.Contains(res.TxResults[0].Log, "insufficient") {
		t.Fatalf("results %+v", res.TxResults)
	}
	if got := n.balance(4); got != before-3 {
		t.Fatalf("balance %d, want %d (fee only)", got, before-3)
	}
}

func TestValidatorSetChangesTwoHeightsLater(t *testing.T) {
	n := newTestNet(t, 6, 4)
	newVal := n.keys[5]
	_, res := n.block(n.tx(5, 1, func(tx *Tx) { tx.Bond = &Bond{Amount: 50_000} }))
	h := res.Height
	if res.ValidatorUpdates == nil {
		t.Fatal("bond produced no validator update")
	}
	in := func(height uint64) bool {
		vals, err := n.st.ValidatorsAt(height)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if v.Address == newVal.Address() {
				if v.Power != 50_000 || v.PubKey != newVal.Public() {
					t.Fatalf("validator %+v", v)
				}
				return true
			}
		}
		return false
	}
	if in(h + 1) {
		t.Fatalf("bond at %d already in the set of %d", h, h+1)
	}
	if !in(h + 2) {
		t.Fatalf("bond at %d not in the set of %d", h, h+2)
	}
	// Unbond everything: out at +2, funds back after the unbonding period
	// plus the two heights it still voted for (it stays slashable).
	balBefore := n.balance(5)
	_, res = n.block(n.tx(5, 1, func(tx *Tx) { tx.Unbond = &Unbond{Amount: 50_000} }))
	if !in(res.Height+1) || in(res.Height+2) {
		t.Fatal("unbond did not take effect exactly two heights later")
	}
	for i := uint64(0); i < n.gen.Params.UnbondingBlocks+1; i++ {
		n.block()
	}
	if got := n.balance(5); got != balBefore-1 {
		t.Fatalf("unbonded stake returned early: %d", got)
	}
	_, res = n.block()
	if got := n.balance(5); got != balBefore-1+50_000 {
		t.Fatalf("balance %d after unbonding period, want %d", got, balBefore-1+50_000)
	}
	if len(res.Events) != 1 || res.Events[0].Type != EvUnbonded {
		t.Fatalf("events %+v", res.Events)
	}
}

func TestDoubleSignEvidenceSlashes(t *testing.T) {
	n := newTestNet(t, 6, 4)
	n.block()
	off := n.keys[2]
	vote := func(id byte) consensus.Vote {
		v := consensus.Vote{Type: consensus.Precommit, Height: 1, Round: 0, Timestamp: 1, Validator: off.Address()}
		v.BlockID[0] = id
		v.Signature = off.Sign(testChainID, consensus.MsgTypePrecommit, v.SignBytes())
		return v
	}
	ev := consensus.NewDuplicateVoteEvidence(vote(1), vote(2))
	data, err := consensus.EncodeEvidence(&ev)
	if err != nil {
		t.Fatal(err)
	}
	burnedBefore := n.st.Globals().Burned
	_, res := n.block(n.tx(5, 1, func(tx *Tx) { tx.Evidence = &EvidenceTx{Data: data} }))
	if res.TxResults[0].Code != 0 {
		t.Fatalf("evidence refused: %s", res.TxResults[0].Log)
	}
	want := uint64(10_000) * uint64(n.gen.Params.SlashBps) / 10000
	if got := n.st.Globals().Burned - burnedBefore; got != want {
		t.Fatalf("burned %d, want %d", got, want)
	}
	_, res = n.block(n.tx(5, 1, func(tx *Tx) { tx.Evidence = &EvidenceTx{Data: data} }))
	if res.TxResults[0].Code != 1 || !strings.Contains(res.TxResults[0].Log, "already punished") {
		t.Fatalf("second submission of the same evidence: %+v", res.TxResults[0])
	}
	forged := vote(3)
	forged.Signature = n.keys[3].Sign(testChainID, consensus.MsgTypePrecommit, forged.SignBytes())
	ev2 := consensus.NewDuplicateVoteEvidence(vote(1), forged)
	data2, _ := consensus.EncodeEvidence(&ev2)
	_, res = n.block(n.tx(5, 1, func(tx *Tx) { tx.Evidence = &EvidenceTx{Data: data2} }))
	if res.TxResults[0].Code != 1 {
		t.Fatal("evidence with a vote signed by another key was accepted")
	}
}

func TestMarketSettlement(t *testing.T) {
	n := newTestNet(t, 8, 4)
	const prov, client = 6, 7
	n.block(n.tx(prov, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 5000} }))

	// Completed job: provider paid for usage, client refunded the rest.
	o := n.offer(prov, 1)
	b := n.bid(client, 1, 1000, 10_000)
	clientBefore := n.balance(client)
	_, res := n.block(n.matchTx(o, b))
	if res.TxResults[0].Code != 0 {
		t.Fatalf("match refused: %s", res.TxResults[0].Log)
	}
	if got := n.balance(client); got != clientBefore-b.MaxPrice {
		t.Fatalf("client balance %d after match, want %d", got, clientBefore-b.MaxPrice)
	}
	p, _, _ := n.st.Provider(n.keys[prov].Address())
	if p.Reserved.CPU != 1000 {
		t.Fatalf("reserved %+v", p.Reserved)
	}
	// The same bid cannot be matched twice: such a block is invalid.
	n.refuseMatch(t, n.matchTx(n.offer(prov, 2), b), b.ID(), market.CodeBidUsed)
	usage := market.Usage{CPUMs: 2000, MemMiBMs: 1000}
	pay, _ := market.Settle(&MatchTx{Offer: *o, Bid: *b}, usage)
	provBefore := n.balance(prov)
	_, res = n.block(n.tx(prov, 1, func(tx *Tx) { tx.Result = &ResultTx{JobID: b.ID(), ExitCode: 0, Usage: usage} }))
	if res.TxResults[0].Code != 0 {
		t.Fatalf("result refused: %s", res.TxResults[0].Log)
	}
	if m, _, _ := n.st.Match(b.ID()); m.Status != MatchHeld || m.HeldPay != pay.Provider || n.balance(prov) != provBefore-1 {
		t.Fatalf("after the result: match %s holding %d, provider balance %d; want held %d, balance %d", m.Status, m.HeldPay, n.balance(prov), pay.Provider, provBefore-1)
	}
	resultAt := n.time // the run ended: the chain learns now (market.Perf)
	n.block()          // the challenge window ends
	if got := n.balance(prov); got != provBefore-1+pay.Provider {
		t.Fatalf("provider balance %d, want %d", got, provBefore-1+pay.Provider)
	}
	m, _, _ := n.st.Match(b.ID())
	if m.Status != MatchCompleted || m.Paid != pay.Provider || m.Refunded != pay.Refund {
		t.Fatalf("match record %+v", m)
	}
	p, _, _ = n.st.Provider(n.keys[prov].Address())
	if !p.Reserved.IsZero() || p.Completed != 1 || p.Reputation() <= 500 {
		t.Fatalf("provider after result %+v rep %d", p, p.Reputation())
	}
	// The learnt figures follow (market.Perf.Observe), and the matcher's
	// view carries them.
	perf, err := n.st.Perf(n.keys[prov].Address())
	if err != nil || perf.Jobs != 1 || perf.TimeoutPpm != 0 || perf.FailPpm != 0 || perf.PaidAvg != pay.Provider || perf.UpdatedAt != resultAt {
		t.Fatalf("perf after a completed job %+v (%v)", perf, err)
	}
	if ps, ok := n.st.View().Provider(n.keys[prov].Address()); !ok || ps.Perf != perf {
		t.Fatalf("view's perf %+v, state's %+v", ps.Perf, perf)
	}

	// Timed-out job: client refunded in full, collateral slashed.
	b2 := n.bid(client, 2, 500, 1000)
	n.block(n.matchTx(n.offer(prov, 3), b2))
	clientBefore = n.balance(client)
	collBefore := p.Collateral
	m, _, _ = n.st.Match(b2.ID())
	for n.time+1000 < m.Deadline {
		n.block()
	}
	_, res = n.block()
	if len(res.Events) != 1 || res.Events[0].Type != EvTimedOut {
		t.Fatalf("events at the deadline %+v", res.Events)
	}
	if got := n.balance(client); got != clientBefore+b2.MaxPrice {
		t.Fatalf("client balance %d after timeout, want %d", got, clientBefore+b2.MaxPrice)
	}
	p, _, _ = n.st.Provider(n.keys[prov].Address())
	if want := collBefore - collBefore*uint64(n.gen.Params.TimeoutSlashBps)/10000; p.Collateral != want || p.TimedOut != 1 {
		t.Fatalf("provider after timeout %+v, want collateral %d", p, want)
	}
	if perf2, _ := n.st.Perf(n.keys[prov].Address()); perf2.Jobs != 2 || perf2.TimeoutPpm == 0 || perf2.Cost(n.time) <= perf.Cost(n.time) {
		t.Fatalf("perf after a timeout %+v, before %+v", perf2, perf)
	}
	// A late result is refused.
	_, res = n.block(n.tx(prov, 1, func(tx *Tx) { tx.Result = &ResultTx{JobID: b2.ID()} }))
	if res.TxResults[0].Code != 1 {
		t.Fatal("result after timeout accepted")
	}
	// Cancel: only the client, only before a match.
	b3 := n.bid(client, 3, 500, 1000)
	_, res = n.block(n.tx(prov, 1, func(tx *Tx) { tx.BidCancel = &BidCancel{Bid: *b3} }))
	if res.TxResults[0].Code != 1 {
		t.Fatal("a stranger cancelled a bid")
	}
	_, res = n.block(n.tx(client, 1, func(tx *Tx) { tx.BidCancel = &BidCancel{Bid: *b3} }))
	if res.TxResults[0].Code != 0 {
		t.Fatalf("cancel refused: %s", res.TxResults[0].Log)
	}
	n.refuseMatch(t, n.matchTx(n.offer(prov, 4), b3), b3.ID(), market.CodeBidUsed)
}

// TestRandomizedRunKeepsInvariants drives random transactions of every kind
// through many blocks; testNet.block checks the invariants after each one.
// A second state replays the same blocks and must agree on every root, and
// a state rebuilt from a full scan must have the same root.
func TestRandomizedRunKeepsInvariants(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 7))
	n := newTestNet(t, 10, 4)
	n.step = 4000
	replica, err := n.gen.State()
	if err != nil {
		t.Fatal(err)
	}
	const providers = 2 // accounts 8, 9
	for i := 8; i < 8+providers; i++ {
		n.block(n.tx(i, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 2000} }))
	}
	for _, b := range n.blocks {
		res, err := Execute(replica, b, ExecOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := replica.Apply(res); err != nil {
			t.Fatal(err)
		}
	}
	var open []*market.Bid
	seq := uint64(10)
	lastNonce := map[wallet.Address]uint64{}
	okKinds := map[Kind]int{}
	okEvents := map[string]int{}
	wantKinds := []Kind{KindTransfer, KindBond, KindUnbond, KindMatch, KindResult, KindBidCancel}
	covered := func() bool {
		for _, k := range wantKinds {
			if okKinds[k] == 0 {
				return false
			}
		}
		return okEvents[EvTimedOut] > 0
	}
	// 60 blocks, or more (up to 240) until every kind has been exercised:
	// a rare seed is slow to produce, say, a successful Unbond.
	for blk := 0; blk < 60 || (blk < 240 && !covered()); blk++ {
		var txs [][]byte
		for j := 0; j < r.IntN(8); j++ {
			from := r.IntN(8)
			switch r.IntN(10) {
			case 0, 1, 2, 3:
				txs = append(txs, n.tx(from, 1+r.Uint64N(3), func(tx *Tx) {
					tx.Transfer = &Transfer{To: n.keys[r.IntN(10)].Address(), Amount: 1 + r.Uint64N(n.balance(from)+10)}
				}))
			case 4:
				txs = append(txs, n.tx(from, 1, func(tx *Tx) { tx.Bond = &Bond{Amount: 1 + r.Uint64N(20_000)} }))
			case 5:
				txs = append(txs, n.tx(from, 1, func(tx *Tx) { tx.Unbond = &Unbond{Amount: 1 + r.Uint64N(12_000)} }))
			case 6, 7:
				seq++
				b := n.bid(from, seq, 100+r.Uint64N(3000), int64(1000+r.IntN(5000)))
				txs = append(txs, n.matchTx(n.offer(8+r.IntN(providers), seq), b))
			case 8:
				if len(open) > 0 {
					b := open[r.IntN(len(open))]
					if r.IntN(4) > 0 { // mostly a job still open, so that results do settle
						var live []*market.Bid
						for _, ob := range open {
							if m, ok, _ := n.st.Match(ob.ID()); ok && m.Status == MatchOpen {
								live = append(live, ob)
							}
						}
						if len(live) > 0 {
							b = live[r.IntN(len(live))]
						}
					}
					m, ok, _ := n.st.Match(b.ID())
					if ok {
						pi := 8
						if m.Match.Offer.ProviderAddress() == n.keys[9].Address() {
							pi = 9
						}
						txs = append(txs, n.tx(pi, 1, func(tx *Tx) {
							tx.Result = &ResultTx{JobID: b.ID(), ExitCode: int32(r.IntN(2)), Usage: market.Usage{CPUMs: r.Uint64N(10_000), MemMiBMs: r.Uint64N(1 << 20)}}
						}))
					}
				}
			case 9:
				txs = append(txs, n.tx(from, 1, func(tx *Tx) { tx.BidCancel = &BidCancel{Bid: *n.bid(from, 1_000_000+uint64(blk), 100, 1000)} }))
			}
		}
		b, bres := n.block(txs...)
		for i, tr := range bres.TxResults {
			if tr.Code == 0 {
				okKinds[tr.Kind]++
			}
			if tr.Kind == KindMatch && tr.Code != 0 {
				t.Fatalf("seed %d: block %d holds a failed match: %s", seed, b.Header.Height, tr.Log)
			}
			// Every other committed job may get a result; the rest never
			// do and time out.
			if tr.Kind == KindMatch && tr.Code == 0 && okKinds[KindMatch]%2 == 1 {
				tx, err := DecodeTx(b.Txs[i])
				if err != nil {
					t.Fatal(err)
				}
				open = append(open, &tx.Match.Bid)
			}
		}
		for _, ev := range bres.Events {
			okEvents[ev.Type]++
		}
		res, err := Execute(replica, b, ExecOptions{})
		if err != nil {
			t.Fatalf("seed %d: replica block %d: %v", seed, b.Header.Height, err)
		}
		if err := replica.Apply(res); err != nil {
			t.Fatal(err)
		}
		for _, k := range n.keys {
			acc, _ := n.st.Account(k.Address())
			if acc.Nonce < lastNonce[k.Address()] {
				t.Fatalf("seed %d: nonce of %s went back", seed, k.Address())
			}
			lastNonce[k.Address()] = acc.Nonce
		}
	}
	t.Logf("successful txs by kind %v, events %v", okKinds, okEvents)
	for _, k := range wantKinds {
		if okKinds[k] == 0 {
			t.Errorf("seed %d: no successful %v transaction: the run did not exercise it", seed, k)
		}
	}
	if okEvents[EvTimedOut] == 0 {
		t.Errorf("seed %d: no timeout settled", seed)
	}
	records := map[string][]byte{}
	_ = n.st.Each(func(k string, v []byte) error { records[k] = v; return nil })
	rebuilt, err := StateFromRecords(records)
	if err != nil {
		t.Fatal(err)
	}
	if rebuilt.Root() != n.st.Root() || replica.Root() != n.st.Root() {
		t.Fatalf("seed %d: roots differ: incremental %x, rebuilt %x, replica %x", seed, n.st.Root(), rebuilt.Root(), replica.Root())
	}
}

// TestMarketTimeoutHonoursResultGrace: the genesis's result grace sets the
// deadline (matchedAt + timeout + grace); the match stays open in every
// block before it and times out in the first block at or after it, whether
// or not a block lands exactly on the deadline.
func TestMarketTimeoutHonoursResultGrace(t *testing.T) {
	tests := []struct {
		name              string
		graceMs, stepMs   uint64
		timeoutMs         int64
		exactlyOnDeadline bool
	}{
		{"minimum grace, block on the deadline", MinResultGraceMs, 1000, 1000, true},
		{"grace between blocks", 1500, 700, 1000, false},
		{"grace crossing a second boundary", 2300, 1100, 2000, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := testGenesis(8, 4)
			g.Params.ResultGraceMs = tc.graceMs
			n := newTestNetFrom(t, g, 4)
			n.step = int64(tc.stepMs)
			const prov, client = 6, 7
			n.block(n.tx(prov, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 5000} }))
			b := n.bid(client, 1, 500, tc.timeoutMs)
			if _, res := n.block(n.matchTx(n.offer(prov, 1), b)); res.TxResults[0].Code != 0 {
				t.Fatalf("match refused: %s", res.TxResults[0].Log)
			}
			m, ok, err := n.st.Match(b.ID())
			if err != nil || !ok {
				t.Fatalf("match record: %v %v", ok, err)
			}
			want := m.MatchedAt + tc.timeoutMs + int64(tc.graceMs)
			if m.Deadline != want {
				t.Fatalf("deadline %d, want matchedAt %d + timeout %d + grace %d = %d", m.Deadline, m.MatchedAt, tc.timeoutMs, tc.graceMs, want)
			}
			if m.Deadline >= m.MatchedAt+tc.timeoutMs+market.DefaultResultGraceMs {
				t.Fatalf("deadline %d does not reflect the short grace", m.Deadline)
			}
			for n.time+n.step < m.Deadline {
				_, res := n.block()
				if len(res.Events) != 0 {
					t.Fatalf("block at %d, %d ms before the deadline: events %+v", n.time, m.Deadline-n.time, res.Events)
				}
				if rec, _, _ := n.st.Match(b.ID()); rec.Status != MatchOpen {
					t.Fatalf("match %v at %d, before its deadline %d", rec.Status, n.time, m.Deadline)
				}
			}
			_, res := n.block()
			if n.time < m.Deadline || n.time-n.step >= m.Deadline {
				t.Fatalf("test drove the net wrong: block at %d is not the first at or after %d", n.time, m.Deadline)
			}
			if (n.time == m.Deadline) != tc.exactlyOnDeadline {
				t.Fatalf("block at %d, deadline %d: the case does not cover what it names", n.time, m.Deadline)
			}
			if len(res.Events) != 1 || res.Events[0].Type != EvTimedOut || res.Events[0].JobID != b.ID() {
				t.Fatalf("first block at/after the deadline (time %d, deadline %d): events %+v", n.time, m.Deadline, res.Events)
			}
			if rec, _, _ := n.st.Match(b.ID()); rec.Status != MatchTimedOut {
				t.Fatalf("match %v after its deadline", rec.Status)
			}
		})
	}
}

// A snapshot keeps the records of its height while later blocks apply,
// and passes the invariants there: what the driver's background
// invariant scan reads.
func TestSnapshotIsNotChangedByLaterBlocks(t *testing.T) {
	n := newTestNet(t, 3, 1)
	snap := n.st.Snapshot()
	before := n.balance(1)
	n.block(transfer(n, 0, 1, 500, 1))
	if n.balance(1) != before+500 {
		t.Fatalf("the transfer did not apply: %d", n.balance(1))
	}
	acc, err := snap.Account(n.keys[1].Address())
	if err != nil || acc.Balance != before {
		t.Fatalf("snapshot balance %d %v, want %d from before the block", acc.Balance, err, before)
	}
	if snap.Height() != n.st.Height()-1 {
		t.Fatalf("snapshot height %d, state %d", snap.Height(), n.st.Height())
	}
	if err := CheckInvariants(snap); err != nil {
		t.Fatalf("snapshot invariants: %v", err)
	}
}
