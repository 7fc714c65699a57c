package chain

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/wallet"
)

const testChainID = "bourse-test"

func testKey(i int) wallet.PrivateKey {
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[:], uint64(i)+1)
	k, err := wallet.KeyFromSeed(seed[:])
	if err != nil {
		panic(err)
	}
	return k
}

// testNet is one chain driven block by block in memory.
type testNet struct {
	t        testing.TB
	keys     []wallet.PrivateKey
	vals     int
	gen      *Genesis
	st       *State
	time     int64
	prevHash [32]byte
	pending  map[wallet.Address]uint64 // nonces handed out beyond the state's
	cache    *SigCache
	blocks   []*Block
	step     int64 // block interval in ms
	// checkEvery > 1 checks the invariants (a full scan) only every
	// checkEvery blocks, for tests on large states.
	checkEvery uint64
	// cold, when set, plays the block store of a state with SetCold: it
	// receives each block's changes before the state applies them.
	cold *memCold
}

// memCold is a ColdReader over a map, with a count of its reads.
type memCold struct {
	m     map[string][]byte
	reads int
}

func (c *memCold) StateRecord(key string) ([]byte, error) {
	c.reads++
	v, ok := c.m[key]
	if !ok {
		return nil, fmt.Errorf("state record %x: missing", key)
	}
	return v, nil
}

func testGenesis(nAccounts, nVals int) *Genesis {
	g := &Genesis{ChainID: testChainID, GenesisTime: 1_700_000_000_000, Timeouts: DefaultTimeouts(), Params: DefaultParams()}
	g.Params.UnbondingBlocks = 5
	// Held results are paid at the next block (one block step) unless a
	// test lengthens the window; settle_test.go does.
	g.Params.ChallengeWindowMs = MinChallengeWindowMs
	for i := 0; i < nAccounts; i++ {
		g.Accounts = append(g.Accounts, GenesisAccount{Address: testKey(i).Address(), Balance: 1_000_000})
	}
	for i := 0; i < nVals; i++ {
		k := testKey(i)
		g.Validators = append(g.Validators, GenesisValidator{Address: k.Address(), PubKey: HexKey(k.Public()), Stake: 10_000})
	}
	return g
}

func newTestNet(t testing.TB, nAccounts, nVals int) *testNet {
	t.Helper()
	return newTestNetFrom(t, testGenesis(nAccounts, nVals), nVals)
}

// newTestNetFrom starts a test net from g (built by testGenesis, then
// adjusted), whose first nVals accounts are the validators.
func newTestNetFrom(t testing.TB, g *Genesis, nVals int) *testNet {
	t.Helper()
	nAccounts := len(g.Accounts)
	st, err := g.State()
	if err != nil {
		t.Fatalf("genesis state: %v", err)
	}
	n := &testNet{t: t, vals: nVals, gen: g, st: st, time: g.GenesisTime, pending: map[wallet.Address]uint64{}, cache: NewSigCache(1 << 16), step: 1000}
	// Every test net keeps settled matches on disk only, as a node does.
	n.cold = &memCold{m: records(t, st)}
	if err := st.SetCold(n.cold); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < nAccounts; i++ {
		n.keys = append(n.keys, testKey(i))
	}
	return n
}

// tx builds and signs a transaction from account i with the next nonce.
func (n *testNet) tx(i int, fee uint64, set func(*Tx)) []byte {
	n.t.Helper()
	k := n.keys[i]
	acc, err := n.st.Account(k.Address())
	if err != nil {
		n.t.Fatal(err)
	}
	nonce := max(acc.Nonce, n.pending[k.Address()])
	n.pending[k.Address()] = nonce + 1
	tx := &Tx{ChainID: testChainID, Sender: k.Public(), Nonce: nonce, Fee: fee}
	set(tx)
	if err := tx.Sign(k); err != nil {
		n.t.Fatal(err)
	}
	raw, err := tx.Encode()
	if err != nil {
		n.t.Fatal(err)
	}
	return raw
}

func (n *testNet) proposer() wallet.PrivateKey {
	vals, err := n.st.ValidatorsAt(n.st.Height() + 1)
	if err != nil {
		n.t.Fatal(err)
	}
	v := vals[int(n.st.Height())%len(vals)]
	for _, k := range n.keys {
		if k.Address() == v.Address {
			return k
		}
	}
	n.t.Fatalf("proposer %s has no test key", v.Address)
	return wallet.PrivateKey{}
}

// block builds the next block from candidates, executes it as a validator
// would (fresh, no cache), applies it and checks the invariants.
func (n *testNet) block(candidates ...[]byte) (*Block, *Result) {
	n.t.Helper()
	n.time += n.step
	tmpl := BlockTemplate{Height: n.st.Height() + 1, Time: n.time, PrevHash: n.prevHash, Proposer: n.proposer().Address()}
	b, _, err := BuildBlock(n.st, tmpl, candidates, ExecOptions{SigCache: n.cache})
	if err != nil {
		n.t.Fatalf("build block %d: %v", tmpl.Height, err)
	}
	raw, err := b.Encode()
	if err != nil {
		n.t.Fatal(err)
	}
	b2, err := DecodeBlock(raw)
	if err != nil {
		n.t.Fatalf("decode own block: %v", err)
	}
	res, err := Execute(n.st, b2, ExecOptions{})
	if err != nil {
		n.t.Fatalf("execute block %d: %v", b.Header.Height, err)
	}
	if n.cold != nil {
		n.st.mu.RLock()
		for _, c := range res.Changes {
			if v, ok := n.st.kv[string(c.Key)]; ok && len(v) == 0 || slices.Contains(n.st.cooling, string(c.Key)) {
				n.t.Fatalf("block %d changes the settled match %q, which is kept on disk only", b.Header.Height, printableKey(string(c.Key)))
			}
		}
		n.st.mu.RUnlock()
		for _, c := range res.Changes {
			if c.Value == nil {
				delete(n.cold.m, string(c.Key))
			} else {
				n.cold.m[string(c.Key)] = c.Value
			}
		}
	}
	if err := n.st.Apply(res); err != nil {
		n.t.Fatal(err)
	}
	if n.checkEvery <= 1 || b.Header.Height%n.checkEvery == 0 {
		if err := CheckInvariants(n.st); err != nil {
			n.t.Fatalf("after block %d: %v", b.Header.Height, err)
		}
	}
	n.prevHash = b.Hash()
	n.pending = map[wallet.Address]uint64{}
	n.blocks = append(n.blocks, b2)
	return b2, res
}

func (n *testNet) balance(i int) uint64 {
	acc, err := n.st.Account(n.keys[i].Address())
	if err != nil {
		n.t.Fatal(err)
	}
	return acc.Balance
}

// offer and bid build a signed offer of provider p and bid of client c
// that match each other, valid at the net's next block time.
func (n *testNet) offer(p int, seq uint64) *market.Offer {
	o := &market.Offer{PeerID: "peer", Seq: seq, Expires: n.time + 5*60*1000,
		Total:     market.Resources{CPU: 4000, MemMiB: 4096, DiskMiB: 1024},
		Free:      market.Resources{CPU: 4000, MemMiB: 4096, DiskMiB: 1024},
		Executors: []string{market.ExecWASM}, Terms: market.PriceTerms{PerCPUSecond: 10, PerGiBSecond: 5, PerJob: 3}}
	if err := o.Sign(testChainID, n.keys[p]); err != nil {
		n.t.Fatal(err)
	}
	return o
}

func (n *testNet) bid(c int, nonce uint64, cpu uint64, timeoutMs int64) *market.Bid {
	sum := sha256.Sum256([]byte("payload"))
	b := &market.Bid{Executor: market.ExecWASM, Nonce: nonce,
		Payload:   market.Payload{SHA256: sum[:], Size: 100, Peer: "peer"},
		Resources: market.Resources{CPU: cpu, MemMiB: 256}, MaxPrice: 100_000,
		MatchBy: n.time + 60*60*1000, TimeoutMs: timeoutMs, Preference: market.PreferCheapest, Replicas: 1}
	if err := b.Sign(testChainID, n.keys[c]); err != nil {
		n.t.Fatal(err)
	}
	return b
}

func (n *testNet) matchTx(o *market.Offer, b *market.Bid) []byte {
	n.t.Helper()
	price, err := market.PriceFor(o, b)
	if err != nil {
		n.t.Fatal(err)
	}
	prop := n.proposer()
	for i, k := range n.keys {
		if k.Address() == prop.Address() {
			return n.tx(i, 0, func(tx *Tx) { tx.Match = &MatchTx{Offer: *o, Bid: *b, Price: price} })
		}
	}
	n.t.Fatal("no proposer key")
	return nil
}

func transfer(n *testNet, from, to int, amount, fee uint64) []byte {
	return n.tx(from, fee, func(tx *Tx) { tx.Transfer = &Transfer{To: n.keys[to].Address(), Amount: amount} })
}

func genesisJSON(t testing.TB, g *Genesis) []byte {
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
