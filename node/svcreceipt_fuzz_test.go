package node

import (
	"testing"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/codec"
)

// FuzzDecodeReceipt: an owner's node answers svcctl/1 receipt requests
// with bytes the provider decodes; garbage is an error, never a panic, and
// what decodes re-encodes to the same bytes (canonical only).
func FuzzDecodeReceipt(f *testing.F) {
	r := chain.ServiceReceipt{Lease: chain.LeaseID{1}, Periods: 3, Requests: 10, Bytes: 100, Sig: make([]byte, 64)}
	f.Add(codec.MustMarshal(&r))
	f.Add([]byte{0xa0})
	f.Add([]byte{0xff, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeReceipt(b)
		if err != nil {
			return
		}
		if again := codec.MustMarshal(&got); string(again) != string(b) {
			t.Fatalf("decoded %x re-encodes to %x", b, again)
		}
	})
}
