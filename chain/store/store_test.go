package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/internal/chaintest"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	pebbleds "github.com/ipfs/go-ds-pebble"
)

// runChain commits blocks with transfers to s, starting from n's state.
func runChain(t testing.TB, n *chaintest.Net, s *Store, blocks int, r *rand.Rand) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < blocks; i++ {
		var txs [][]byte
		for j := 0; j < r.IntN(5); j++ {
			from := r.IntN(len(n.Keys))
			txs = append(txs, n.Tx(from, 1, func(tx *chain.Tx) {
				tx.Transfer = &chain.Transfer{To: n.Keys[r.IntN(len(n.Keys))].Address(), Amount: 1 + r.Uint64N(1000)}
			}))
		}
		b, res := n.Block(txs...)
		if err := s.SaveBlock(ctx, b, []byte(fmt.Sprintf("commit-%d", b.Header.Height)), res); err != nil {
			t.Fatalf("save block %d: %v", b.Header.Height, err)
		}
	}
}

// storeContract is the behaviour every backend must have.
func storeContract(t *testing.T, open func() *Store, reopen func(*Store) *Store) {
	ctx := context.Background()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	n := chaintest.NewNet(t, 6, 4)
	s := open()
	if s.Initialized() {
		t.Fatal("fresh store says initialized")
	}
	if _, err := s.LoadState(ctx); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("LoadState before genesis: %v", err)
	}
	if err := s.InitGenesis(ctx, chaintest.GenesisJSON(t, n.Gen), n.St); err != nil {
		t.Fatal(err)
	}
	if err := s.InitGenesis(ctx, chaintest.GenesisJSON(t, n.Gen), n.St); err == nil {
		t.Fatal("second InitGenesis accepted")
	}
	runChain(t, n, s, 12, r)

	// SaveBlock refuses what does not extend the chain.
	last := n.Blocks[len(n.Blocks)-1]
	b, res := n.Block()
	bad := *b
	bad.Header.PrevHash[0] ^= 1
	tests := []struct {
		name string
		b    *chain.Block
		res  *chain.Result
		want string
	}{
		{"same height again", last, res, "store is at height"},
		{"wrong prev hash", &bad, res, "prev hash"},
		{"result of another block", b, &chain.Result{Height: b.Header.Height}, "result is for"},
	}
	for _, tc := range tests {
		if err := s.SaveBlock(ctx, tc.b, nil, tc.res); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	if err := s.SaveBlock(ctx, b, []byte("c"), res); err != nil {
		t.Fatal(err)
	}

	s = reopen(s)
	if s.Height() != n.St.Height() || s.LastHash() != b.Hash() {
		t.Fatalf("reopened at height %d hash %x, want %d %x", s.Height(), s.LastHash(), n.St.Height(), b.Hash())
	}
	st, err := s.LoadState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Root() != n.St.Root() {
		t.Fatalf("loaded root %x, want %x", st.Root(), n.St.Root())
	}
	for _, want := range n.Blocks {
		got, err := s.Block(ctx, want.Header.Height)
		if err != nil {
			t.Fatal(err)
		}
		if got.Hash() != want.Hash() {
			t.Fatalf("block %d differs", want.Header.Height)
		}
		for i, tx := range want.Txs {
			loc, raw, err := s.TxByHash(ctx, chain.TxHash(tx))
			if err != nil || loc.Height != want.Header.Height || loc.Index != uint32(i) || string(raw) != string(tx) {
				t.Fatalf("tx lookup: %+v %v", loc, err)
			}
		}
	}
	if _, err := s.Block(ctx, s.Height()+1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("block beyond height: %v", err)
	}
	if c, err := s.Commit(ctx, 3); err != nil || string(c) != "commit-3" {
		t.Fatalf("commit 3: %q %v", c, err)
	}
	if _, err := s.LoadSignerState(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("signer state before save: %v", err)
	}
	if err := s.SaveSignerState(ctx, []byte("hrs"), nil, nil); err != nil {
		t.Fatal(err)
	}
	if b, err := s.LoadSignerState(ctx); err != nil || string(b) != "hrs" {
		t.Fatalf("signer state %q %v", b, err)
	}
	// Values saved with the state load by id, and leave when dropped.
	idA, idB := [32]byte{1}, [32]byte{2}
	if err := s.SaveSignerState(ctx, []byte("hrs2"), map[[32]byte][]byte{idA: []byte("a"), idB: []byte("b")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveSignerState(ctx, []byte("hrs3"), nil, [][32]byte{idA}); err != nil {
		t.Fatal(err)
	}
	if v, err := s.LoadSignerValue(ctx, idB); err != nil || string(v) != "b" {
		t.Fatalf("signer value b: %q %v", v, err)
	}
	if _, err := s.LoadSignerValue(ctx, idA); !errors.Is(err, ErrNotFound) {
		t.Fatalf("dropped signer value: %v", err)
	}
	if b, err := s.LoadSignerState(ctx); err != nil || string(b) != "hrs3" {
		t.Fatalf("signer state %q %v", b, err)
	}
	// Every record of the loaded state reads back by key (the state's
	// ColdReader); a key the state does not have is a corrupt store.
	if err := st.Each(func(k string, v []byte) error {
		got, err := s.StateRecord(k)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("state record %q: %x %v, want %x", k, got, err, v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StateRecord("match/no such job"); !errors.Is(err, ErrCorruptStore) {
		t.Fatalf("a missing state record: %v, want ErrCorruptStore", err)
	}
	// The chain goes on from the loaded state.
	n.St = st
	runChain(t, n, s, 3, r)
	_ = s.Close()
	// A read after Close (a node stopping while a peer's request still
	// runs) is an error, not a read of a closed database.
	if _, err := s.StateRecord("globals"); !errors.Is(err, ErrClosed) {
		t.Fatalf("state record after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStoreMemory(t *testing.T) {
	storeContract(t, NewMem, func(s *Store) *Store {
		s2, err := NewOn(s.d)
		if err != nil {
			t.Fatal(err)
		}
		return s2
	})
}

func TestStorePebble(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "chain")
	open := func() *Store {
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	storeContract(t, open, func(s *Store) *Store {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return open()
	})
}

// TestStoreDamageIsAnError: a damaged store never opens as a fresh one.
func TestStoreDamageIsAnError(t *testing.T) {
	ctx := context.Background()
	build := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "chain")
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		n := chaintest.NewNet(t, 4, 4)
		if err := s.InitGenesis(ctx, chaintest.GenesisJSON(t, n.Gen), n.St); err != nil {
			t.Fatal(err)
		}
		runChain(t, n, s, 3, rand.New(rand.NewPCG(1, 1)))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	raw := func(t *testing.T, dir string, fn func(d *pebbleds.Datastore)) {
		d, err := pebbleds.NewDatastore(dir)
		if err != nil {
			t.Fatal(err)
		}
		fn(d)
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		atOpen bool // the error comes from Open rather than LoadState
	}{
		{"state record rewritten", func(t *testing.T, dir string) {
			raw(t, dir, func(d *pebbleds.Datastore) {
				k := stateKey([]byte(globalsKey))
				v, err := d.Get(ctx, k)
				if err != nil {
					t.Fatal(err)
				}
				v[len(v)-1] ^= 1
				_ = d.Put(ctx, k, v)
			})
		}, false},
		{"state record deleted", func(t *testing.T, dir string) {
			raw(t, dir, func(d *pebbleds.Datastore) { _ = d.Delete(ctx, stateKey([]byte(globalsKey))) })
		}, false},
		{"last block missing", func(t *testing.T, dir string) {
			raw(t, dir, func(d *pebbleds.Datastore) { _ = d.Delete(ctx, blockKey(3)) })
		}, true},
		{"format marker missing", func(t *testing.T, dir string) {
			raw(t, dir, func(d *pebbleds.Datastore) { _ = d.Delete(ctx, keyFormat) })
		}, true},
		{"database files removed", func(t *testing.T, dir string) {
			ms, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
			if len(ms) == 0 {
				t.Fatal("no manifest to remove")
			}
			for _, m := range ms {
				_ = os.Remove(m)
			}
		}, true},
		{"not a database", func(t *testing.T, dir string) {
			_ = os.RemoveAll(dir)
			_ = os.MkdirAll(dir, 0o700)
			_ = os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello"), 0o600)
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := build(t)
			tc.damage(t, dir)
			s, err := Open(dir)
			if tc.atOpen {
				if err == nil {
					_ = s.Close()
					t.Fatal("damaged store opened")
				}
				return
			}
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer s.Close()
			if _, err := s.LoadState(ctx); !errors.Is(err, ErrCorruptStore) {
				t.Fatalf("LoadState on a damaged store: %v", err)
			}
		})
	}
}

// TestCrashConsistency kills (SIGKILL) a process that commits blocks as
// fast as it can, at a random point, several times; after each kill the
// store must open at a whole block with a state whose root matches that
// block's header, and the chain must go on from there.
func TestCrashConsistency(t *testing.T) {
	if os.Getenv("BOURSE_CRASH_DIR") != "" {
		t.Skip("helper process")
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 5))
	dir := filepath.Join(t.TempDir(), "chain")
	ctx := context.Background()
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.v")
		cmd.Env = append(os.Environ(), "BOURSE_CRASH_DIR="+dir, fmt.Sprintf("BOURSE_CRASH_SEED=%d", r.Uint64()))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		want := 3 + r.IntN(20)
		seen := 0
		for seen < want && sc.Scan() {
			if strings.HasPrefix(sc.Text(), "saved ") {
				seen++
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if seen < want {
			t.Fatalf("seed %d: helper stopped after %d blocks", seed, seen)
		}
		s, err := Open(dir)
		if err != nil {
			t.Fatalf("seed %d round %d: reopen after kill: %v", seed, round, err)
		}
		st, err := s.LoadState(ctx)
		if err != nil {
			t.Fatalf("seed %d round %d: load state after kill: %v", seed, round, err)
		}
		last, err := s.Block(ctx, s.Height())
		if err != nil {
			t.Fatal(err)
		}
		if last.Header.StateRoot != st.Root() {
			t.Fatalf("seed %d: state root %x, block %d says %x", seed, st.Root(), s.Height(), last.Header.StateRoot)
		}
		if _, err := s.Block(ctx, s.Height()+1); !errors.Is(err, ErrNotFound) {
			t.Fatalf("seed %d: block beyond the recorded height: %v", seed, err)
		}
		if err := chain.CheckInvariants(st); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		t.Logf("round %d: killed after %d saves, store at height %d", round, seen, s.Height())
		_ = s.Close()
	}
}

// TestCrashHelper is the victim process of TestCrashConsistency.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv("BOURSE_CRASH_DIR")
	if dir == "" {
		t.Skip("run by TestCrashConsistency")
	}
	var seed uint64
	fmt.Sscan(os.Getenv("BOURSE_CRASH_SEED"), &seed)
	ctx := context.Background()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := chaintest.NewNet(t, 6, 4)
	if !s.Initialized() {
		if err := s.InitGenesis(ctx, chaintest.GenesisJSON(t, n.Gen), n.St); err != nil {
			t.Fatal(err)
		}
	} else {
		if n.St, err = s.LoadState(ctx); err != nil {
			t.Fatal(err)
		}
		n.Time, n.PrevHash = n.St.Globals().Time, s.LastHash()
	}
	r := rand.New(rand.NewPCG(seed, 9))
	for {
		runChain(t, n, s, 1, r)
		fmt.Printf("saved %d\n", s.Height())
	}
}

// TestStoreValidatorRun: the store's record of where the last block's
// validator set began matches a walk over the headers after every block,
// across set changes, a reopen, and a store written before the record
// existed.
func TestStoreValidatorRun(t *testing.T) {
	ctx := context.Background()
	n := chaintest.NewNet(t, 8, 4)
	s := NewMem()
	if err := s.InitGenesis(ctx, chaintest.GenesisJSON(t, n.Gen), n.St); err != nil {
		t.Fatal(err)
	}
	if h, start := s.ValidatorRun(); h != ([32]byte{}) || start != 0 {
		t.Fatalf("before block 1: %x %d", h[:4], start)
	}
	walk := func() ([32]byte, uint64) {
		last := n.Blocks[len(n.Blocks)-1].Header
		start := last.Height
		for start > 1 && n.Blocks[start-2].Header.ValidatorsHash == last.ValidatorsHash {
			start--
		}
		return last.ValidatorsHash, start
	}
	changes := 0
	for i := range 24 {
		var txs [][]byte
		if i%6 == 2 { // a new validator bonds: the set changes two heights on
			txs = append(txs, n.Tx(4+i/6, 1, func(tx *chain.Tx) { tx.Bond = &chain.Bond{Amount: 10_000} }))
		}
		b, res := n.Block(txs...)
		if err := s.SaveBlock(ctx, b, []byte("c"), res); err != nil {
			t.Fatal(err)
		}
		wantHash, wantStart := walk()
		if h, start := s.ValidatorRun(); h != wantHash || start != wantStart {
			t.Fatalf("block %d: run %x from %d, headers say %x from %d", b.Header.Height, h[:4], start, wantHash[:4], wantStart)
		}
		if wantStart == b.Header.Height && b.Header.Height > 1 {
			changes++
		}
	}
	if changes < 3 {
		t.Fatalf("only %d validator set changes: the test did not exercise them", changes)
	}
	wantHash, wantStart := walk()
	s2, err := NewOn(s.d)
	if err != nil {
		t.Fatal(err)
	}
	if h, start := s2.ValidatorRun(); h != wantHash || start != wantStart {
		t.Fatalf("reopened: %x from %d, want %x from %d", h[:4], start, wantHash[:4], wantStart)
	}
	// A store from before the record: rebuilt from the headers on open.
	if err := s.d.Delete(ctx, keySetStart); err != nil {
		t.Fatal(err)
	}
	s3, err := NewOn(s.d)
	if err != nil {
		t.Fatal(err)
	}
	if h, start := s3.ValidatorRun(); h != wantHash || start != wantStart {
		t.Fatalf("rebuilt: %x from %d, want %x from %d", h[:4], start, wantHash[:4], wantStart)
	}
}

// globalsKey is the state key of chain's Globals record, which every
// state holds: the records these tests damage.
const globalsKey = "globals"
