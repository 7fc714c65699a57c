package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// lyingSource serves, for any hash, whatever content it was given.
type lyingSource struct {
	content []byte
	size    int64 // announced size
}

func (l lyingSource) Open([32]byte) (io.ReadCloser, int64, error) {
	return io.NopCloser(bytes.NewReader(l.content)), l.size, nil
}

// errRemote marks a case that must fail with a *RemoteError.
var errRemote = errors.New("remote error")

func TestBlobFetch(t *testing.T) {
	rng := seededRand(t)
	payload := make([]byte, 3*blobChunk+rng.IntN(blobChunk)) // several frames
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	honest := newTestHost(t, nil)
	var store MemBlobSource
	hash := store.Add(payload)
	unpublished := store.Add([]byte("stored but not published"))
	srv, err := NewBlobServer(honest.Host, &store, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	srv.Publish(hash)

	liar := newTestHost(t, nil)
	lieSrv, err := NewBlobServer(liar.Host, lyingSource{content: []byte("not what you asked for"), size: 22}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	lieSrv.Publish(hash)
	short := newTestHost(t, nil) // announces more than it sends
	shortSrv, err := NewBlobServer(short.Host, lyingSource{content: payload[:100], size: int64(len(payload))}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	shortSrv.Publish(hash)

	client := newTestHost(t, nil)
	for _, h := range []*testHost{honest, liar, short} {
		connect(t, client.Host, h.Host)
	}
	tests := []struct {
		name    string
		from    *testHost
		hash    [32]byte
		max     int64
		wantErr error
	}{
		{"honest server", honest, hash, int64(len(payload)), nil},
		{"over the size cap", honest, hash, int64(len(payload)) - 1, ErrBlobTooLarge},
		{"not published", honest, unpublished, 1 << 20, ErrBlobNotFound},
		{"unknown hash", honest, sha256.Sum256([]byte("nobody has this")), 1 << 20, ErrBlobNotFound},
		{"lying server", liar, hash, 1 << 20, ErrHashMismatch},
		{"short server", short, hash, 1 << 20, errRemote},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := client.FetchBlob(ctx, tc.from.ID(), tc.hash, tc.max)
			var re *RemoteError
			switch {
			case tc.wantErr == errRemote:
				if !errors.As(err, &re) || got != nil {
					t.Fatalf("got %d bytes, err %v; want a remote error", len(got), err)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) || got != nil {
					t.Fatalf("got %d bytes, err %v; want %v", len(got), err, tc.wantErr)
				}
			default:
				if err != nil || !bytes.Equal(got, payload) {
					t.Fatalf("got %d bytes (equal %v), err %v", len(got), bytes.Equal(got, payload), err)
				}
			}
		})
	}

	// Unpublish withdraws the blob.
	srv.Unpublish(hash)
	if _, err := client.FetchBlob(context.Background(), honest.ID(), hash, 1<<20); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("after unpublish: %v", err)
	}
}

// The receiver accepts exactly a header, the announced bytes and the right
// hash; everything else fails.
func TestBlobReceiverFraming(t *testing.T) {
	content := []byte("hello blob")
	hash := sha256.Sum256(content)
	hdr := func(n uint64) []byte {
		var b [8]byte
		for i := 0; i < 8; i++ {
			b[7-i] = byte(n >> (8 * i))
		}
		return b[:]
	}
	tests := []struct {
		name    string
		frames  [][]byte
		wantErr error
	}{
		{"ok in one frame", [][]byte{hdr(10), content}, nil},
		{"ok in pieces", [][]byte{hdr(10), content[:3], nil, content[3:]}, nil},
		{"no header", nil, ErrBlobMalformed},
		{"short header", [][]byte{{0, 1}}, ErrBlobMalformed},
		{"too few bytes", [][]byte{hdr(10), content[:9]}, ErrBlobMalformed},
		{"too many bytes", [][]byte{hdr(9), content}, ErrBlobMalformed},
		{"over cap", [][]byte{hdr(1 << 40)}, ErrBlobTooLarge},
		{"wrong content", [][]byte{hdr(10), []byte("hello blub")}, ErrHashMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			r := newBlobReceiver(hash, 100, &out)
			var err error
			for _, f := range tc.frames {
				if err = r.frame(f); err != nil {
					break
				}
			}
			if err == nil {
				err = r.finish()
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && !bytes.Equal(out.Bytes(), content) {
				t.Fatalf("wrote %q", out.Bytes())
			}
		})
	}
}

// admitOne admits one peer, and only with the right credential.
type admitOne struct {
	peer peer.ID
	cred string
}

func (a admitOne) AuthorizeBlob(_ context.Context, from peer.ID, _ [32]byte, cred []byte) bool {
	return from == a.peer && string(cred) == a.cred
}

// With an authorizer, a published blob reaches only the peers it admits;
// every other peer, with or without a credential, is told the blob does
// not exist. A blob published to everyone reaches anyone.
func TestStrangerCannotFetchPublishedBlobByHash(t *testing.T) {
	server := newTestHost(t, nil)
	owner := newTestHost(t, nil)
	stranger := newTestHost(t, nil)
	connect(t, owner.Host, server.Host)
	connect(t, stranger.Host, server.Host)
	var store MemBlobSource
	private := store.Add([]byte("the client's payload"))
	public := store.Add([]byte("a public dataset"))
	srv, err := NewBlobServer(server.Host, &store, 1<<20)
	must(t, err)
	srv.SetAuthorizer(admitOne{peer: owner.ID(), cred: "job 7"})
	srv.Publish(private)
	srv.PublishPublic(public)
	srv.Publish(public) // does not make it private again

	tests := []struct {
		name    string
		from    *testHost
		hash    [32]byte
		cred    []byte
		wantErr error
	}{
		{"admitted peer with its credential", owner, private, []byte("job 7"), nil},
		{"admitted peer without a credential", owner, private, nil, ErrBlobNotFound},
		{"admitted peer with a wrong credential", owner, private, []byte("job 8"), ErrBlobNotFound},
		{"stranger", stranger, private, nil, ErrBlobNotFound},
		{"stranger replaying the owner's credential", stranger, private, []byte("job 7"), ErrBlobNotFound},
		{"stranger, public blob", stranger, public, nil, nil},
		{"credential at the cap", owner, public, make([]byte, MaxBlobCredential), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var buf bytes.Buffer
			_, err := tc.from.FetchBlobWith(ctx, server.ID(), tc.hash, tc.cred, 1<<20, &buf)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && sha256.Sum256(buf.Bytes()) != tc.hash {
				t.Fatal("fetched the wrong bytes")
			}
		})
	}
	if _, err := owner.FetchBlobWith(context.Background(), server.ID(), public, make([]byte, MaxBlobCredential+1), 1<<20, io.Discard); err == nil {
		t.Error("a credential over the cap was sent")
	}
}
