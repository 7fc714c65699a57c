package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// PayloadFetcher gets a payload by hash from a peer; the node supplies it
// (over the p2p blob protocol). from names the peer (the client's node).
// An implementation should stop reading after size bytes; FetchPayload
// checks the size and the hash again anyway.
type PayloadFetcher interface {
	Fetch(ctx context.Context, hash [32]byte, size int64, from string) ([]byte, error)
}

// DefaultMaxPayload is the payload size cap used when none is configured.
const DefaultMaxPayload = 64 << 20

// FetchPayload fetches a payload of the announced size and hash, refusing
// sizes above max (ErrPayloadTooLarge) and bytes that do not hash to hash
// (ErrPayloadHash). Nothing unverified is ever returned.
func FetchPayload(ctx context.Context, f PayloadFetcher, hash [32]byte, size int64, from string, max int64) ([]byte, error) {
	short := hex.EncodeToString(hash[:6])
	if max <= 0 {
		max = DefaultMaxPayload
	}
	if size < 0 || size > max {
		return nil, fmt.Errorf("fetch payload %s: announced %d bytes, cap %d: %w", short, size, max, ErrPayloadTooLarge)
	}
	b, err := f.Fetch(ctx, hash, size, from)
	if err != nil {
		return nil, fmt.Errorf("fetch payload %s from %s: %w", short, from, err)
	}
	if int64(len(b)) != size {
		return nil, fmt.Errorf("fetch payload %s from %s: got %d bytes, announced %d: %w", short, from, len(b), size, ErrPayloadHash)
	}
	if sha256.Sum256(b) != hash {
		return nil, fmt.Errorf("fetch payload %s from %s: %w", short, from, ErrPayloadHash)
	}
	return b, nil
}
