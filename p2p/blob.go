package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Blob protocol (ProtoBlob), on top of streamed request/response:
//
//	request   = sha256 (32 bytes) || credential (0 to MaxBlobCredential bytes)
//	response  = data frame: size (8 bytes, big endian)
//	            data frames: the content, at most blobChunk bytes each
//	            end frame
//
// The server only serves hashes it Published, and only to peers its
// BlobAuthorizer admits (with the credential the client sent), unless the
// hash was published to everyone; everybody else gets ErrBlobNotFound, as
// if the server had never heard of the hash. The client checks size and
// sha256 before accepting.
const blobChunk = 64 << 10

var (
	// ErrHashMismatch: the content a peer sent does not hash to what was asked.
	ErrHashMismatch = errors.New("blob hash mismatch")
	// ErrBlobTooLarge: the blob exceeds the caller's size cap.
	ErrBlobTooLarge = errors.New("blob too large")
	// ErrBlobMalformed: the peer broke the blob framing (bad header, more or
	// fewer bytes than announced).
	ErrBlobMalformed = errors.New("malformed blob response")
	// ErrBlobNotFound: the server has not published the hash, or not to
	// the asking peer.
	ErrBlobNotFound = errors.New("blob not found")
)

// MaxBlobCredential caps the credential a blob request may carry.
const MaxBlobCredential = 256

// BlobAuthorizer decides whether peer from may fetch hash, given the
// credential its request carried (opaque to this package; possibly
// empty). It must be cheap and safe for concurrent use: it runs for every
// request of a published, non-public hash.
type BlobAuthorizer interface {
	AuthorizeBlob(ctx context.Context, from peer.ID, hash [32]byte, credential []byte) bool
}

// BlobSource opens content by its sha256. The worker's result store and
// the node's payload store implement it. Open returns the content and its
// exact size; the caller closes the reader.
type BlobSource interface {
	Open(hash [32]byte) (io.ReadCloser, int64, error)
}

// BlobServer serves, over ProtoBlob, exactly the hashes published to it,
// reading them from a BlobSource, to the peers its BlobAuthorizer admits
// (every peer when it has none). Its published set is guarded by a
// mutex: it is a plain registry with no background work.
type BlobServer struct {
	hs  *Host
	src BlobSource
	max int64

	mu        sync.RWMutex
	auth      BlobAuthorizer
	published map[[32]byte]bool // hash -> public
}

// NewBlobServer registers the blob protocol on hs, serving from src blobs
// of at most maxSize bytes. Only one BlobServer may be attached to a host.
func NewBlobServer(hs *Host, src BlobSource, maxSize int64) (*BlobServer, error) {
	if src == nil || maxSize <= 0 {
		return nil, errors.New("new blob server: need a source and a positive size cap")
	}
	s := &BlobServer{hs: hs, src: src, max: maxSize, published: make(map[[32]byte]bool)}
	if err := hs.HandleStream(ProtoBlob, sha256.Size+MaxBlobCredential, s.serve); err != nil {
		return nil, fmt.Errorf("new blob server: %w", err)
	}
	return s, nil
}

// SetAuthorizer makes the server serve non-public hashes only to the
// peers a admits. Nil serves every published hash to every peer.
func (s *BlobServer) SetAuthorizer(a BlobAuthorizer) {
	s.mu.Lock()
	s.auth = a
	s.mu.Unlock()
}

// Publish makes hash fetchable by the peers the authorizer admits. It
// does not withdraw a public publication.
func (s *BlobServer) Publish(hash [32]byte) {
	s.mu.Lock()
	if _, ok := s.published[hash]; !ok {
		s.published[hash] = false
	}
	s.mu.Unlock()
}

// PublishPublic makes hash fetchable by every peer, whatever the
// authorizer says.
func (s *BlobServer) PublishPublic(hash [32]byte) {
	s.mu.Lock()
	s.published[hash] = true
	s.mu.Unlock()
}

// Unpublish stops serving hash (fetches already running finish).
func (s *BlobServer) Unpublish(hash [32]byte) {
	s.mu.Lock()
	delete(s.published, hash)
	s.mu.Unlock()
}

// Published reports whether hash is served.
func (s *BlobServer) Published(hash [32]byte) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.published[hash]
	return ok
}

// Close stops serving the blob protocol.
func (s *BlobServer) Close() { s.hs.Unhandle(ProtoBlob) }

// allowed reports whether from may fetch hash with credential cred.
func (s *BlobServer) allowed(ctx context.Context, from peer.ID, hash [32]byte, cred []byte) bool {
	s.mu.RLock()
	public, ok := s.published[hash]
	auth := s.auth
	s.mu.RUnlock()
	switch {
	case !ok:
		return false
	case public || auth == nil:
		return true
	}
	return auth.AuthorizeBlob(ctx, from, hash, cred)
}

// parseBlobRequest splits a blob request into hash and credential.
func parseBlobRequest(req []byte) (hash [32]byte, cred []byte, err error) {
	if len(req) < sha256.Size || len(req) > sha256.Size+MaxBlobCredential {
		return hash, nil, fmt.Errorf("%w: request is %d bytes, want 32 to %d", ErrBlobMalformed, len(req), sha256.Size+MaxBlobCredential)
	}
	return [32]byte(req[:sha256.Size]), req[sha256.Size:], nil
}

func (s *BlobServer) serve(ctx context.Context, from peer.ID, req []byte, send func([]byte) error) error {
	hash, cred, err := parseBlobRequest(req)
	if err != nil {
		return err
	}
	if !s.allowed(ctx, from, hash, cred) {
		return ErrBlobNotFound
	}
	rc, size, err := s.src.Open(hash)
	if err != nil {
		s.hs.log.Warn("blob source open failed", "hash", hex.EncodeToString(hash[:8]), "err", err)
		return ErrBlobNotFound
	}
	defer rc.Close()
	if size < 0 || size > s.max {
		return fmt.Errorf("%w: %d bytes", ErrBlobTooLarge, size)
	}
	if err := send(binary.BigEndian.AppendUint64(nil, uint64(size))); err != nil {
		return err
	}
	buf := make([]byte, blobChunk)
	r := io.LimitReader(rc, size)
	var sent int64
	for sent < size {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(r, buf[:min(int64(blobChunk), size-sent)])
		if n > 0 {
			if err := send(buf[:n]); err != nil {
				return err
			}
			sent += int64(n)
			s.hs.m.blobBytes.WithLabelValues("out").Add(float64(n))
		}
		if err != nil {
			s.hs.log.Warn("blob source read failed", "hash", hex.EncodeToString(hash[:8]), "sent", sent, "size", size, "err", err)
			return errors.New("blob source read failed")
		}
	}
	return nil
}

// blobReceiver checks a blob response frame by frame.
type blobReceiver struct {
	want    [32]byte
	max     int64
	w       io.Writer
	h       hash.Hash
	size    int64 // -1 until the header frame
	got     int64
	written int64
}

func newBlobReceiver(want [32]byte, max int64, w io.Writer) *blobReceiver {
	return &blobReceiver{want: want, max: max, w: w, h: sha256.New(), size: -1}
}

func (b *blobReceiver) frame(p []byte) error {
	if b.size < 0 {
		if len(p) != 8 {
			return fmt.Errorf("%w: header is %d bytes, want 8", ErrBlobMalformed, len(p))
		}
		size := binary.BigEndian.Uint64(p)
		if size > uint64(b.max) {
			return fmt.Errorf("%w: peer announced %d bytes, cap %d", ErrBlobTooLarge, size, b.max)
		}
		b.size = int64(size)
		return nil
	}
	if int64(len(p)) > b.size-b.got {
		return fmt.Errorf("%w: more than the announced %d bytes", ErrBlobMalformed, b.size)
	}
	b.got += int64(len(p))
	b.h.Write(p)
	n, err := b.w.Write(p)
	b.written += int64(n)
	if err != nil {
		return fmt.Errorf("write blob: %w", err)
	}
	return nil
}

// finish checks the blob after the end frame.
func (b *blobReceiver) finish() error {
	if b.size < 0 {
		return fmt.Errorf("%w: no header", ErrBlobMalformed)
	}
	if b.got != b.size {
		return fmt.Errorf("%w: got %d of %d bytes", ErrBlobMalformed, b.got, b.size)
	}
	if [32]byte(b.h.Sum(nil)) != b.want {
		return ErrHashMismatch
	}
	return nil
}

// FetchBlobTo fetches the blob with sha256 hash from p, streaming it into w,
// and returns the bytes written. It fails if the blob exceeds maxSize or
// does not hash to hash. w sees the content before it is verified: on any
// error, discard what was written (write to a temporary file and rename it
// only on success).
func (hs *Host) FetchBlobTo(ctx context.Context, p peer.ID, hash [32]byte, maxSize int64, w io.Writer) (int64, error) {
	return hs.FetchBlobWith(ctx, p, hash, nil, maxSize, w)
}

// FetchBlobWith is FetchBlobTo with a credential for the server's
// BlobAuthorizer (at most MaxBlobCredential bytes).
func (hs *Host) FetchBlobWith(ctx context.Context, p peer.ID, hash [32]byte, credential []byte, maxSize int64, w io.Writer) (int64, error) {
	if len(credential) > MaxBlobCredential {
		return 0, fmt.Errorf("fetch blob %s: credential of %d bytes exceeds %d", hex.EncodeToString(hash[:8]), len(credential), MaxBlobCredential)
	}
	rcv := newBlobReceiver(hash, maxSize, w)
	req := append(hash[:len(hash):len(hash)], credential...)
	err := hs.RequestStream(ctx, p, ProtoBlob, req, blobChunk, rcv.frame)
	if err == nil {
		err = rcv.finish()
	}
	if err != nil {
		var re *RemoteError
		if errors.As(err, &re) && re.Msg == ErrBlobNotFound.Error() {
			err = fmt.Errorf("%w: %w", ErrBlobNotFound, err)
		}
		return rcv.written, fmt.Errorf("fetch blob %s from %s: %w", hex.EncodeToString(hash[:8]), p.ShortString(), err)
	}
	hs.m.blobBytes.WithLabelValues("in").Add(float64(rcv.got))
	return rcv.written, nil
}

// FetchBlob fetches the blob with sha256 hash from p into memory and
// returns it only once its size and hash are verified.
func (hs *Host) FetchBlob(ctx context.Context, p peer.ID, hash [32]byte, maxSize int64) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := hs.FetchBlobTo(ctx, p, hash, maxSize, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// MemBlobSource is a BlobSource over in-memory blobs, for tests and small
// stores. Safe for concurrent use.
type MemBlobSource struct {
	mu    sync.RWMutex
	blobs map[[32]byte][]byte
}

// Add stores data and returns its sha256.
func (m *MemBlobSource) Add(data []byte) [32]byte {
	h := sha256.Sum256(data)
	m.mu.Lock()
	if m.blobs == nil {
		m.blobs = make(map[[32]byte][]byte)
	}
	m.blobs[h] = bytes.Clone(data)
	m.mu.Unlock()
	return h
}

// Open implements BlobSource.
func (m *MemBlobSource) Open(hash [32]byte) (io.ReadCloser, int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	b, ok := m.blobs[hash]
	if !ok {
		return nil, 0, ErrBlobNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}
