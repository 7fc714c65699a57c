package p2p

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// NodeKeyFile is the name of the node identity file in the home directory.
const NodeKeyFile = "node.key"

// maxKeyFileSize bounds how much of a key file is read.
const maxKeyFileSize = 4096

// LoadIdentity reads the node identity at path: crypto.MarshalPrivateKey
// bytes of a libp2p Ed25519 key. It refuses other key types and files that
// group or others can read.
func LoadIdentity(path string) (crypto.PrivKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load identity %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("load identity %s: not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("load identity %s: mode %v is readable by others, want 0600", path, st.Mode().Perm())
	}
	if st.Size() > maxKeyFileSize {
		return nil, fmt.Errorf("load identity %s: %d bytes is too large for a key", path, st.Size())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load identity %s: %w", path, err)
	}
	key, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("load identity %s: decode key: %w", path, err)
	}
	if key.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("load identity %s: key type %v, want Ed25519", path, key.Type())
	}
	return key, nil
}

// LoadOrCreateIdentity loads the identity at path, or, when no file exists
// there, generates a new Ed25519 key and writes it with mode 0600 (creating
// the directory with mode 0700). It never overwrites an existing file.
func LoadOrCreateIdentity(path string) (crypto.PrivKey, error) {
	key, err := LoadIdentity(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key, _, err = crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("create identity %s: generate: %w", path, err)
	}
	raw, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("create identity %s: marshal: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create identity %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Somebody created it between our stat and open: use theirs.
		return LoadIdentity(path)
	}
	if err != nil {
		return nil, fmt.Errorf("create identity %s: %w", path, err)
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("create identity %s: write: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("create identity %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("create identity %s: close: %w", path, err)
	}
	return key, nil
}
