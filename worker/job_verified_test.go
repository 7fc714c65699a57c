package worker

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

// TestPayloadVerifiedSkipsOnlyTheHash: a caller that checked the hash
// itself spares the runtime a second sha256 of a large module; without the
// flag a wrong hash is refused.
func TestPayloadVerifiedSkipsOnlyTheHash(t *testing.T) {
	payload := []byte("\x00asm\x01\x00\x00\x00")
	job := Job{Executor: KindWASM, Payload: payload, PayloadHash: sha256.Sum256([]byte("other")),
		Limits: Limits{Resources: Resources{CPU: 100, MemoryMiB: 16, DiskMiB: 1}, Timeout: time.Second}}
	if err := job.Validate(); !errors.Is(err, ErrPayloadHash) {
		t.Fatalf("wrong hash: %v, want ErrPayloadHash", err)
	}
	job.PayloadVerified = true
	if err := job.Validate(); err != nil {
		t.Fatalf("verified payload: %v", err)
	}
	job.Executor = "vm" // everything else is still checked
	if err := job.Validate(); err == nil {
		t.Fatal("unknown executor accepted")
	}
}
