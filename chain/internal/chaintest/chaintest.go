// Package chaintest drives one chain block by block in memory, for the
// tests of the packages around chain (store, mempool). chain's own tests
// keep an unexported copy (they cannot import this package: it imports
// chain).
package chaintest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/wallet"
)

const ChainID = "bourse-test"

func Key(i int) wallet.PrivateKey {
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[:], uint64(i)+1)
	k, err := wallet.KeyFromSeed(seed[:])
	if err != nil {
		panic(err)
	}
	return k
}

// Net is one chain driven block by block in memory.
type Net struct {
	t        testing.TB
	Keys     []wallet.PrivateKey
	vals     int
	Gen      *chain.Genesis
	St       *chain.State
	Time     int64
	PrevHash [32]byte
	Pending  map[wallet.Address]uint64 // nonces handed out beyond the state's
	cache    *chain.SigCache
	Blocks   []*chain.Block
	step     int64 // block interval in ms
	// checkEvery > 1 checks the invariants (a full scan) only every
	// checkEvery blocks, for tests on large states.
	checkEvery uint64
	// lastCommit is the certificate of the last block Certified built.
	lastCommit []byte
}

// CheckEvery makes Block check the invariants only every k blocks.
func (n *Net) CheckEvery(k uint64) { n.checkEvery = k }

func Genesis(nAccounts, nVals int) *chain.Genesis {
	g := &chain.Genesis{ChainID: ChainID, GenesisTime: 1_700_000_000_000, Timeouts: chain.DefaultTimeouts(), Params: chain.DefaultParams()}
	g.Params.UnbondingBlocks = 5
	g.Params.ChallengeWindowMs = chain.MinChallengeWindowMs // held results are paid a second later
	for i := 0; i < nAccounts; i++ {
		g.Accounts = append(g.Accounts, chain.GenesisAccount{Address: Key(i).Address(), Balance: 1_000_000})
	}
	for i := 0; i < nVals; i++ {
		k := Key(i)
		g.Validators = append(g.Validators, chain.GenesisValidator{Address: k.Address(), PubKey: chain.HexKey(k.Public()), Stake: 10_000})
	}
	return g
}

func NewNet(t testing.TB, nAccounts, nVals int) *Net {
	t.Helper()
	return NewNetFrom(t, Genesis(nAccounts, nVals), nVals)
}

// NewNetFrom starts a test net from g (built by Genesis, then
// adjusted), whose first nVals accounts are the validators.
func NewNetFrom(t testing.TB, g *chain.Genesis, nVals int) *Net {
	t.Helper()
	nAccounts := len(g.Accounts)
	st, err := g.State()
	if err != nil {
		t.Fatalf("genesis state: %v", err)
	}
	n := &Net{t: t, vals: nVals, Gen: g, St: st, Time: g.GenesisTime, Pending: map[wallet.Address]uint64{}, cache: chain.NewSigCache(1 << 16), step: 1000}
	for i := 0; i < nAccounts; i++ {
		n.Keys = append(n.Keys, Key(i))
	}
	return n
}

// tx builds and signs a transaction from account i with the next nonce.
func (n *Net) Tx(i int, fee uint64, set func(*chain.Tx)) []byte {
	n.t.Helper()
	k := n.Keys[i]
	acc, err := n.St.Account(k.Address())
	if err != nil {
		n.t.Fatal(err)
	}
	nonce := max(acc.Nonce, n.Pending[k.Address()])
	n.Pending[k.Address()] = nonce + 1
	tx := &chain.Tx{ChainID: ChainID, Sender: k.Public(), Nonce: nonce, Fee: fee}
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

func (n *Net) Proposer() wallet.PrivateKey {
	vals, err := n.St.ValidatorsAt(n.St.Height() + 1)
	if err != nil {
		n.t.Fatal(err)
	}
	v := vals[int(n.St.Height())%len(vals)]
	for _, k := range n.Keys {
		if k.Address() == v.Address {
			return k
		}
	}
	n.t.Fatalf("proposer %s has no test key", v.Address)
	return wallet.PrivateKey{}
}

// block builds the next block from candidates, executes it as a validator
// would (fresh, no cache), applies it and checks the invariants.
func (n *Net) Block(candidates ...[]byte) (*chain.Block, *chain.Result) {
	n.t.Helper()
	n.Time += n.step
	return n.block(nil, candidates)
}

// Certified is Block as a real network makes it: the block carries the
// previous block's commit certificate and its BFT time (block 1: genesis
// time + 1), and it returns the block's own certificate, precommits of
// every validator of its height (all signed by the net's keys, timestamped
// one step after the block). Use either Block or Certified on a net.
func (n *Net) Certified(candidates ...[]byte) (*chain.Block, *chain.Result, []byte) {
	n.t.Helper()
	h := n.St.Height() + 1
	if h == 1 {
		n.Time = n.Gen.GenesisTime + 1
	} else {
		n.Time += n.step // every precommit of the last commit carries it
	}
	vals, err := n.St.ValidatorsAt(h)
	if err != nil {
		n.t.Fatal(err)
	}
	b, res := n.block(n.lastCommit, candidates)
	c := &consensus.CommitCertificate{Height: h, BlockID: consensus.BlockID(b.Hash())}
	for _, v := range vals {
		vote := consensus.Vote{Type: consensus.Precommit, Height: h, BlockID: c.BlockID, Timestamp: n.Time + n.step, Validator: v.Address}
		vote.Signature = n.KeyOf(v.Address).Sign(ChainID, consensus.MsgTypePrecommit, vote.SignBytes())
		c.Precommits = append(c.Precommits, vote)
	}
	raw, err := consensus.EncodeCommit(c)
	if err != nil {
		n.t.Fatal(err)
	}
	n.lastCommit = raw
	return b, res, raw
}

// KeyOf is the net's key of address a.
func (n *Net) KeyOf(a wallet.Address) wallet.PrivateKey {
	n.t.Helper()
	for _, k := range n.Keys {
		if k.Address() == a {
			return k
		}
	}
	n.t.Fatalf("no test key for %s", a)
	return wallet.PrivateKey{}
}

func (n *Net) block(lastCommit []byte, candidates [][]byte) (*chain.Block, *chain.Result) {
	n.t.Helper()
	tmpl := chain.BlockTemplate{Height: n.St.Height() + 1, Time: n.Time, PrevHash: n.PrevHash, Proposer: n.Proposer().Address(), LastCommit: lastCommit}
	b, _, err := chain.BuildBlock(n.St, tmpl, candidates, chain.ExecOptions{SigCache: n.cache})
	if err != nil {
		n.t.Fatalf("build block %d: %v", tmpl.Height, err)
	}
	raw, err := b.Encode()
	if err != nil {
		n.t.Fatal(err)
	}
	b2, err := chain.DecodeBlock(raw)
	if err != nil {
		n.t.Fatalf("decode own block: %v", err)
	}
	res, err := chain.Execute(n.St, b2, chain.ExecOptions{})
	if err != nil {
		n.t.Fatalf("execute block %d: %v", b.Header.Height, err)
	}
	if err := n.St.Apply(res); err != nil {
		n.t.Fatal(err)
	}
	if n.checkEvery <= 1 || b.Header.Height%n.checkEvery == 0 {
		if err := chain.CheckInvariants(n.St); err != nil {
			n.t.Fatalf("after block %d: %v", b.Header.Height, err)
		}
	}
	n.PrevHash = b.Hash()
	n.Pending = map[wallet.Address]uint64{}
	n.Blocks = append(n.Blocks, b2)
	return b2, res
}

func (n *Net) Balance(i int) uint64 {
	acc, err := n.St.Account(n.Keys[i].Address())
	if err != nil {
		n.t.Fatal(err)
	}
	return acc.Balance
}

// offer and bid build a signed offer of provider p and bid of client c
// that match each other, valid at the net's next block time.
func (n *Net) Offer(p int, seq uint64) *market.Offer {
	o := &market.Offer{PeerID: "peer", Seq: seq, Expires: n.Time + 5*60*1000,
		Total:     market.Resources{CPU: 4000, MemMiB: 4096, DiskMiB: 1024},
		Free:      market.Resources{CPU: 4000, MemMiB: 4096, DiskMiB: 1024},
		Executors: []string{market.ExecWASM}, Terms: market.PriceTerms{PerCPUSecond: 10, PerGiBSecond: 5, PerJob: 3}}
	if err := o.Sign(ChainID, n.Keys[p]); err != nil {
		n.t.Fatal(err)
	}
	return o
}

func (n *Net) Bid(c int, nonce uint64, cpu uint64, timeoutMs int64) *market.Bid {
	sum := sha256.Sum256([]byte("payload"))
	b := &market.Bid{Executor: market.ExecWASM, Nonce: nonce,
		Payload:   market.Payload{SHA256: sum[:], Size: 100, Peer: "peer"},
		Resources: market.Resources{CPU: cpu, MemMiB: 256}, MaxPrice: 100_000,
		MatchBy: n.Time + 60*60*1000, TimeoutMs: timeoutMs, Preference: market.PreferCheapest, Replicas: 1}
	if err := b.Sign(ChainID, n.Keys[c]); err != nil {
		n.t.Fatal(err)
	}
	return b
}

func (n *Net) MatchTx(o *market.Offer, b *market.Bid) []byte {
	n.t.Helper()
	price, err := market.PriceFor(o, b)
	if err != nil {
		n.t.Fatal(err)
	}
	prop := n.Proposer()
	for i, k := range n.Keys {
		if k.Address() == prop.Address() {
			return n.Tx(i, 0, func(tx *chain.Tx) { tx.Match = &chain.MatchTx{Offer: *o, Bid: *b, Price: price} })
		}
	}
	n.t.Fatal("no proposer key")
	return nil
}

// Transfer is a signed transfer of amount from account from to account to.
func (n *Net) Transfer(from, to int, amount, fee uint64) []byte {
	return n.Tx(from, fee, func(tx *chain.Tx) { tx.Transfer = &chain.Transfer{To: n.Keys[to].Address(), Amount: amount} })
}

// GenesisJSON is g as a genesis file holds it.
func GenesisJSON(t testing.TB, g *chain.Genesis) []byte {
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
