package chain

import (
	"bytes"
	"testing"

	"github.com/bourse-net/bourse/market"
)

func seedTxs(f *testing.F) *testNet {
	n := newTestNet(f, 6, 4)
	f.Add(transfer(n, 0, 1, 5, 1))
	f.Add(n.tx(1, 1, func(tx *Tx) { tx.Bond = &Bond{Amount: 3} }))
	f.Add(n.tx(2, 1, func(tx *Tx) { tx.Result = &ResultTx{JobID: [32]byte{1}, ExitCode: 2} }))
	f.Add([]byte{})
	f.Add([]byte{0xa0})
	return n
}

// FuzzDecodeTx: decoding never panics, and whatever decodes re-encodes to
// the same bytes (one transaction, one encoding, one hash).
func FuzzDecodeTx(f *testing.F) {
	seedTxs(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		tx, err := DecodeTx(data)
		if err != nil {
			return
		}
		again, err := tx.Encode()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("decoded tx re-encodes differently: %v", err)
		}
		_ = VerifyTx(tx)
	})
}

// FuzzDecodeBlock: decoding never panics; a decoded block's header
// commits to its body.
func FuzzDecodeBlock(f *testing.F) {
	n := seedTxs(f)
	b, _ := n.block(transfer(n, 0, 1, 5, 1))
	raw, _ := b.Encode()
	f.Add(raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBlock(data)
		if err != nil {
			return
		}
		if TxsRoot(b.Txs) != b.Header.TxsRoot {
			t.Fatal("decoded block with a wrong txs root")
		}
		again, err := b.Encode()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatal("decoded block re-encodes differently")
		}
	})
}

// FuzzParseGenesis: a genesis file is user input; it errors, never panics,
// and an accepted genesis builds a state.
func FuzzParseGenesis(f *testing.F) {
	g := testGenesis(3, 2)
	f.Add(genesisJSON(f, g))
	f.Add([]byte(`{"chain_id":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGenesis(data)
		if err != nil {
			return
		}
		if _, err := g.State(); err != nil {
			t.Fatalf("valid genesis gives no state: %v", err)
		}
	})
}

// FuzzBlockSequence drives the chain with a program read from the fuzz
// input: signed transactions of every kind (transfers, bonds, unbonds,
// provider registrations, matches, results, cancels, evidence, acks,
// challenges and committee attestations, replicas of jobs of 2 or 3) and
// garbage candidates, cut into blocks by BuildBlock and executed afresh
// as a validator would. After every block the invariants hold (supply to
// the unit, counters, indexes) and a replica that only executes the
// blocks reaches the same state root.
func FuzzBlockSequence(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 11, 4, 5, 6, 11, 7, 8, 9, 10, 11, 11, 6, 7, 11})
	f.Add([]byte{5, 5, 5, 6, 6, 6, 11, 200, 7, 7, 7, 11, 255, 11, 255, 11})
	f.Add([]byte{2, 3, 3, 3, 10, 10, 11, 9, 9, 11, 1, 4, 11})
	// register, match, result, then challenge, attest and ack in the
	// same block (the test window is one block)
	f.Add([]byte{0, 3, 0, 0, 5, 4, 0, 0, 0, 0, 11, 1, 0, 6, 0, 1, 3, 5, 5, 14, 0, 0, 0, 15, 0, 0, 1, 15, 1, 0, 0, 0, 13, 0, 11, 200})
	// two providers, then two replicas of a job of 2 matched on them, two
	// differing results (a tie: referees), attestations, time passing
	f.Add([]byte{0, 3, 0, 0, 0, 3, 1, 0, 11, 1, 0, 4, 0, 0, 0, 2, 0, 0, 4, 0, 0, 1, 2, 1, 11, 1,
		0, 6, 0, 1, 0, 0, 0, 0, 6, 1, 0, 1, 1, 0, 0, 11, 1, 0, 15, 0, 0, 1, 0, 15, 0, 1, 1, 11, 100, 11, 200, 11, 250})
	f.Fuzz(func(t *testing.T, prog []byte) {
		if len(prog) > 400 {
			prog = prog[:400]
		}
		pos := 0
		next := func() int {
			if pos >= len(prog) {
				return 0
			}
			pos++
			return int(prog[pos-1])
		}
		n := newTestNet(t, 8, 4)
		n.step = 2000
		replica, err := n.gen.State()
		if err != nil {
			t.Fatal(err)
		}
		const provA, provB = 6, 7
		var bids []*market.Bid
		seq := uint64(0)
		var txs [][]byte
		cut := func() {
			b, _ := n.block(txs...)
			txs = nil
			res, err := Execute(replica, b, ExecOptions{})
			if err != nil {
				t.Fatalf("replica block %d: %v", b.Header.Height, err)
			}
			if err := replica.Apply(res); err != nil {
				t.Fatal(err)
			}
			if replica.Root() != n.st.Root() {
				t.Fatalf("block %d: replica root %x, builder %x", b.Header.Height, replica.Root(), n.st.Root())
			}
		}
		for pos < len(prog) && n.st.Height() < 40 {
			from := next() % 8
			switch op := next() % 16; op {
			case 0:
				txs = append(txs, n.tx(from, uint64(1+next()%3), func(tx *Tx) {
					tx.Transfer = &Transfer{To: n.keys[next()%8].Address(), Amount: uint64(next()) << uint(next()%20)}
				}))
			case 1:
				txs = append(txs, n.tx(from, 1, func(tx *Tx) { tx.Bond = &Bond{Amount: uint64(1 + next()<<uint(next()%12))} }))
			case 2:
				txs = append(txs, n.tx(from, 1, func(tx *Tx) { tx.Unbond = &Unbond{Amount: uint64(1 + next()<<uint(next()%12))} }))
			case 3:
				txs = append(txs, n.tx(provA+next()%2, 1, func(tx *Tx) {
					tx.ProviderRegister = &ProviderRegister{Collateral: uint64(500 + next()*20)}
				}))
			case 4, 5:
				seq++
				b := n.bid(from, seq, uint64(100+next()*10), int64(500+next()*40))
				if k := uint32(next() % 4); k >= 2 { // a replica of a job of 2 or 3
					b = n.bid(4, 1000+uint64(k), 200, 1000)
					b.Replicas, b.Replica = k, uint32(next())%k
					if err := b.Sign(testChainID, n.keys[4]); err != nil {
						t.Fatal(err)
					}
				}
				bids = append(bids, b)
				txs = append(txs, n.matchTx(n.offer(provA+next()%2, 1), b))
			case 6, 7:
				if len(bids) == 0 {
					continue
				}
				b := bids[next()%len(bids)]
				m, ok, _ := n.st.Match(b.ID())
				if !ok {
					continue
				}
				pi := provA
				if m.Match.Offer.ProviderAddress() == n.keys[provB].Address() {
					pi = provB
				}
				if next()%5 == 0 {
					pi = from // a result from someone else: refused
				}
				txs = append(txs, n.tx(pi, 1, func(tx *Tx) {
					tx.Result = &ResultTx{JobID: b.ID(), ResultHash: [32]byte{byte(next() % 3)}, ExitCode: int32(next() % 2), Usage: market.Usage{CPUMs: uint64(next()) << 8, MemMiBMs: uint64(next()) << 12}}
				}))
			case 8:
				seq++
				txs = append(txs, n.tx(from, 1, func(tx *Tx) { tx.BidCancel = &BidCancel{Bid: *n.bid(next()%8, seq, 100, 1000)} }))
			case 9:
				h := uint64(next()) % (n.st.Height() + 2)
				txs = append(txs, n.tx(from, 1, func(tx *Tx) { tx.Evidence = &EvidenceTx{Data: doubleVote(t, n.keys[next()%4], h)} }))
			case 10:
				garbage := make([]byte, next()%64)
				for i := range garbage {
					garbage[i] = byte(next())
				}
				txs = append(txs, garbage)
			case 11:
				n.step = int64(1 + next()*100)
				cut()
			case 12:
				if len(bids) > 0 {
					txs = append(txs, unavailable(n, provA+next()%2, bids[next()%len(bids)].ID()))
				}
			case 13, 14, 15:
				if len(bids) == 0 {
					continue
				}
				b := bids[next()%len(bids)]
				client := b.ClientAddress()
				ci := from
				for i, k := range n.keys {
					if k.Address() == client && next()%4 != 0 { // sometimes a stranger
						ci = i
					}
				}
				switch op {
				case 13:
					txs = append(txs, n.tx(ci, 1, func(tx *Tx) { tx.Ack = &AckTx{JobID: b.ID()} }))
				case 14:
					txs = append(txs, n.tx(ci, 1, func(tx *Tx) {
						tx.Challenge = &ChallengeTx{JobID: b.ID(), Kind: ChallengeKind(1 + next()%2), MaxDeposit: uint64(1 + next()*100)}
					}))
				case 15:
					m, _, _ := n.st.Match(b.ID())
					h := m.ResultHash
					if next()%3 == 0 {
						h = [32]byte{byte(next())}
					}
					txs = append(txs, n.tx(next()%4, 1, func(tx *Tx) { tx.Attest = &AttestTx{JobID: b.ID(), ResultHash: h} }))
				}
			}
		}
		cut()
	})
}
