package wasm

import (
	"context"
	"crypto/sha256"
	"testing"
)

// FuzzCompile: a payload from the network that is not a valid module ends
// in an error, never a panic or a hang.
func FuzzCompile(f *testing.F) {
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x05\x03\x01\x00\x01")) // one memory
	f.Add([]byte("not wasm"))
	e, err := New(context.Background(), Config{})
	if err != nil {
		f.Fatal(err)
	}
	defer e.Close(context.Background())
	f.Fuzz(func(t *testing.T, payload []byte) {
		_, release, err := e.compile(context.Background(), sha256.Sum256(payload), payload)
		if err == nil {
			release()
		}
	})
}
