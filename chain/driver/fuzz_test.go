package driver

import (
	"context"
	"testing"
	"time"

	"github.com/bourse-net/bourse/codec"
)

// FuzzHandleSync feeds arbitrary requests to a running driver's sync
// handler: every one is answered or refused, none panics or hangs.
func FuzzHandleSync(f *testing.F) {
	for _, r := range []syncRequest{{Kind: reqStatus}, {Kind: reqBlocks, From: 1, Count: 3}, {Kind: reqMessages, Height: 1}, {Kind: 9}} {
		f.Add(codec.MustMarshal(r))
	}
	f.Add([]byte{0xff})
	c := newCluster(f, 1)
	c.start(c.nodes[0])
	d := c.nodes[0].d
	f.Fuzz(func(t *testing.T, req []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := d.HandleSync(ctx, req)
		if err == nil && len(resp) == 0 {
			t.Fatalf("request %x answered with nothing", req)
		}
	})
}

// FuzzSyncResponse decodes arbitrary answers the way the syncer does.
func FuzzSyncResponse(f *testing.F) {
	f.Add(codec.MustMarshal(syncStatus{Height: 3}))
	f.Add(codec.MustMarshal(syncBlocks{Blocks: [][]byte{{1}}, Commits: [][]byte{{2}}}))
	f.Add(codec.MustMarshal(syncMessages{Messages: [][]byte{{3}}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var st syncStatus
		_ = respDecoder.Unmarshal(data, &st)
		var bs syncBlocks
		_ = respDecoder.Unmarshal(data, &bs)
		var ms syncMessages
		_ = respDecoder.Unmarshal(data, &ms)
	})
}
