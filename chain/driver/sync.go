package driver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/internal/clock"
	"github.com/bourse-net/bourse/internal/wire"
)

// The sync protocol: one request, one answer, canonical CBOR.
//
//	status         → the peer's last committed height
//	blocks(from,n) → up to n blocks from height from, each with the commit
//	                 certificate that decided it, at most maxSyncResp bytes
//	messages(h)    → the proposal and votes the peer holds for height h,
//	                 which GossipSub's seen-cache will not deliver twice
const (
	reqStatus   = 1
	reqBlocks   = 2
	reqMessages = 3

	maxSyncReq     = 256
	maxSyncResp    = 8 << 20
	maxBlocksPerRq = 64
)

type syncRequest struct {
	Kind   uint8  `cbor:"1,keyasint"`
	From   uint64 `cbor:"2,keyasint,omitempty"`
	Count  uint32 `cbor:"3,keyasint,omitempty"`
	Height uint64 `cbor:"4,keyasint,omitempty"`
}

type syncStatus struct {
	Height uint64 `cbor:"1,keyasint"`
}

type syncBlocks struct {
	Blocks  [][]byte `cbor:"1,keyasint"`
	Commits [][]byte `cbor:"2,keyasint"`
}

type syncMessages struct {
	Messages [][]byte `cbor:"1,keyasint"`
}

var (
	reqDecoder  = codec.MustDecoder(codec.Limits{MaxSize: maxSyncReq, MaxNesting: 4, MaxArrayElements: 16, MaxMapPairs: 16})
	respDecoder = codec.MustDecoder(codec.Limits{MaxSize: maxSyncResp, MaxNesting: 4, MaxArrayElements: 4 * maxBlocksPerRq * 1024, MaxMapPairs: 16})
)

// HandleSync answers a sync request from a peer. Safe for concurrent use;
// register it on the Transport's request handler for wire.ProtoSync.
func (d *Driver) HandleSync(ctx context.Context, req []byte) ([]byte, error) {
	var r syncRequest
	if err := reqDecoder.Unmarshal(req, &r); err != nil {
		return nil, fmt.Errorf("sync request: %w", err)
	}
	switch r.Kind {
	case reqStatus:
		return codec.Marshal(syncStatus{Height: d.store.Height()})
	case reqBlocks:
		return d.serveBlocks(ctx, r.From, r.Count)
	case reqMessages:
		var msgs []consensus.Message
		if err := d.call(ctx, func() {
			if d.cs.Height() == r.Height {
				msgs = d.cs.Messages(r.Height)
			}
		}); err != nil {
			return nil, err
		}
		out := syncMessages{Messages: make([][]byte, 0, len(msgs))}
		for _, m := range msgs {
			raw, err := consensus.EncodeMessage(m)
			if err != nil {
				return nil, err
			}
			out.Messages = append(out.Messages, raw)
		}
		return codec.Marshal(out)
	default:
		return nil, fmt.Errorf("sync request: unknown kind %d", r.Kind)
	}
}

func (d *Driver) serveBlocks(ctx context.Context, from uint64, n uint32) ([]byte, error) {
	if n == 0 || n > maxBlocksPerRq {
		n = maxBlocksPerRq
	}
	top := d.store.Height()
	out := syncBlocks{}
	size := 0
	for h := from; h <= top && h < from+uint64(n); h++ {
		raw, err := d.store.RawBlock(ctx, h)
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", h, err)
		}
		c, err := d.store.Commit(ctx, h)
		if err != nil {
			return nil, fmt.Errorf("commit %d: %w", h, err)
		}
		size += len(raw) + len(c) + 16
		if size > maxSyncResp-1024 && len(out.Blocks) > 0 {
			break
		}
		out.Blocks = append(out.Blocks, raw)
		out.Commits = append(out.Commits, c)
	}
	return codec.Marshal(out)
}

// syncer catches the node up: when a peer is ahead it fetches blocks with
// their certificates; when the height makes no progress it fetches the
// current height's proposal and votes from peers.
func (d *Driver) syncer() {
	defer d.wg.Done()
	// A ticker on the driver's clock: each tick arms the next one after
	// the round of catching up it triggered.
	tick := make(chan struct{}, 1)
	arm := func() clock.Timer {
		return d.cfg.Clock.AfterFunc(d.cfg.CatchupInterval, func() {
			d.busy.Add(1)
			select {
			case tick <- struct{}{}:
			default:
				d.busy.Add(-1)
			}
		})
	}
	t := arm()
	defer func() { t.Stop() }()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-tick:
		}
		t = arm()
		d.syncRound()
		d.busy.Add(-1)
	}
}

// syncRound is one tick of the syncer: when the node is stalled or a peer
// is ahead, it catches up from one of up to three peers.
func (d *Driver) syncRound() {
	peers := d.tr.Peers()
	if len(peers) == 0 {
		return
	}
	peers = d.usable(peers)
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	if len(peers) > 3 {
		peers = peers[:3]
	}
	stalled := d.now()-d.progress.Load() > 2*d.cfg.CatchupInterval.Milliseconds()
	if !stalled && !d.ahead.Load() {
		return
	}
	// One peer that answered is enough for this tick: asking every
	// peer for the current height's messages makes each serve and this
	// node decode and verify the same proposal (the biggest message)
	// several times, and that happens when the node is slow already.
	for _, p := range peers {
		err := d.catchUp(p)
		if err == nil {
			break
		}
		if d.ctx.Err() == nil {
			d.log.Debug("catch up", "peer", p, "err", err)
		}
	}
}

func (d *Driver) request(p string, r syncRequest, into any) error {
	ctx, cancel := context.WithTimeout(d.ctx, 5*time.Second)
	defer cancel()
	raw, err := d.tr.Request(ctx, p, wire.ProtoSync, codec.MustMarshal(r), maxSyncResp)
	if err != nil {
		return err
	}
	return respDecoder.Unmarshal(raw, into)
}

// catchUp brings this node to peer p's height, or fetches the messages of
// the current height when both are at the same height. It returns
// errPeerBehind when p has neither to give.
func (d *Driver) catchUp(p string) error {
	var st syncStatus
	if err := d.request(p, syncRequest{Kind: reqStatus}, &st); err != nil {
		return err
	}
	for st.Height >= d.Height() {
		from := d.Height()
		var bs syncBlocks
		if err := d.request(p, syncRequest{Kind: reqBlocks, From: from, Count: maxBlocksPerRq}, &bs); err != nil {
			return err
		}
		if len(bs.Blocks) == 0 || len(bs.Blocks) != len(bs.Commits) {
			return errors.New("peer sent no blocks")
		}
		handled := make(chan struct{}) // closed by the loop once it took the last block
		for i, raw := range bs.Blocks {
			b, err := chain.DecodeBlock(raw)
			if err != nil {
				d.penalise(p)
				return fmt.Errorf("block from peer: %w", err)
			}
			c, err := consensus.DecodeCommit(bs.Commits[i])
			if err != nil {
				d.penalise(p)
				return fmt.Errorf("commit from peer: %w", err)
			}
			sb := &syncedBlock{block: b, raw: raw, commit: c, peer: p}
			if i == len(bs.Blocks)-1 {
				sb.handled = handled
			}
			d.busy.Add(1)
			select {
			case d.in <- event{synced: sb}:
			case <-d.ctx.Done():
				d.busy.Add(-1)
				return d.ctx.Err()
			}
		}
		// Wait for the loop to take them (in order) before asking for more.
		select {
		case <-handled:
		case <-d.ctx.Done():
			return d.ctx.Err()
		}
		want := from + uint64(len(bs.Blocks))
		if d.Height() < want {
			return fmt.Errorf("synced blocks up to %d not applied", want-1)
		}
	}
	if st.Height+1 < d.Height() {
		return errPeerBehind
	}
	if st.Height+1 == d.Height() {
		var ms syncMessages
		if err := d.request(p, syncRequest{Kind: reqMessages, Height: d.Height()}, &ms); err != nil {
			return err
		}
		for _, raw := range ms.Messages {
			m, verdict, _ := d.ValidateGossip(raw)
			if verdict == Accept {
				d.HandleGossip(m)
			}
		}
	}
	return nil
}

// errPeerBehind: the peer has nothing this node lacks.
var errPeerBehind = errors.New("peer is behind")

// badPeerPause is how long the syncer ignores a peer that sent an invalid
// block or certificate.
const badPeerPause = time.Minute

// penalise stops syncing from peer for a while.
func (d *Driver) penalise(peer string) {
	if peer == "" {
		return
	}
	d.badMu.Lock()
	defer d.badMu.Unlock()
	d.bad[peer] = d.cfg.Clock.Now().Add(badPeerPause)
}

// usable drops the peers under penalty.
func (d *Driver) usable(peers []string) []string {
	d.badMu.Lock()
	defer d.badMu.Unlock()
	now := d.cfg.Clock.Now()
	out := peers[:0]
	for _, p := range peers {
		if until, ok := d.bad[p]; ok {
			if now.Before(until) {
				continue
			}
			delete(d.bad, p)
		}
		out = append(out, p)
	}
	return out
}
