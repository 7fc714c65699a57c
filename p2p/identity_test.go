package p2p

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
)

func TestLoadOrCreateIdentity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "home", NodeKeyFile)
	k1, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	k2, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Fatal("second call created a new key instead of loading the first")
	}
	raw, _ := os.ReadFile(path)
	if want, _ := crypto.MarshalPrivateKey(k1); string(raw) != string(want) {
		t.Fatal("file does not hold crypto.MarshalPrivateKey bytes")
	}
	k3, err := LoadIdentity(path)
	if err != nil || !k3.Equals(k1) {
		t.Fatalf("LoadIdentity: %v", err)
	}
}

func TestLoadIdentityRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	ed, _, _ := crypto.GenerateEd25519Key(nil)
	edRaw, _ := crypto.MarshalPrivateKey(ed)
	secp, _, _ := crypto.GenerateSecp256k1Key(nil)
	secpRaw, _ := crypto.MarshalPrivateKey(secp)
	tests := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"world readable", edRaw, 0o644},
		{"garbage", []byte("not a key"), 0o600},
		{"empty", nil, 0o600},
		{"wrong key type", secpRaw, 0o600},
		{"too large", make([]byte, maxKeyFileSize+1), 0o600},
	}
	for _, tc := range tests {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, tc.data, tc.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, tc.mode)
		if _, err := LoadIdentity(path); err == nil {
			t.Errorf("%s: loaded", tc.name)
		}
		if _, err := LoadOrCreateIdentity(path); err == nil {
			t.Errorf("%s: LoadOrCreateIdentity replaced or accepted a bad file", tc.name)
		}
	}
	if _, err := LoadIdentity(filepath.Join(dir, "missing")); err == nil {
		t.Error("loaded a missing file")
	}
}
