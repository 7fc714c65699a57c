package wallet

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/scrypt"
)

// Keystore errors callers branch on.
var (
	ErrWrongPassphrase = errors.New("wrong passphrase or tampered key file")
	ErrKeyNotFound     = errors.New("no such key")
	ErrKeyExists       = errors.New("a key with that name already exists")
)

// ScryptParams are the KDF cost parameters, stored in every key file.
type ScryptParams struct {
	N int `json:"n"`
	R int `json:"r"`
	P int `json:"p"`
}

// DefaultScrypt costs about 32 MiB and ~0.1 s per unlock.
var DefaultScrypt = ScryptParams{N: 1 << 15, R: 8, P: 1}

// LightScrypt is for throwaway local testnets and tests only.
var LightScrypt = ScryptParams{N: 1 << 12, R: 8, P: 1}

func (p ScryptParams) validate() error {
	if p.N < 2 || p.N&(p.N-1) != 0 || p.N > 1<<20 {
		return fmt.Errorf("scrypt n=%d: must be a power of two in [2, 2^20]", p.N)
	}
	if p.R < 1 || p.R > 32 || p.P < 1 || p.P > 16 {
		return fmt.Errorf("scrypt r=%d p=%d: out of range", p.R, p.P)
	}
	return nil
}

// keyFile is the on-disk form. Everything but Ciphertext is the header,
// authenticated as associated data so that no field can be altered.
type keyFile struct {
	Version    int          `json:"version"`
	Name       string       `json:"name"`
	Address    string       `json:"address"`
	PublicKey  string       `json:"public_key"`
	KDF        kdfHeader    `json:"kdf"`
	Cipher     cipherHeader `json:"cipher"`
	Ciphertext string       `json:"ciphertext,omitempty"`
}

type kdfHeader struct {
	Name string `json:"name"`
	ScryptParams
	Salt string `json:"salt"`
}

type cipherHeader struct {
	Name  string `json:"name"`
	Nonce string `json:"nonce"`
}

func (f keyFile) header() []byte {
	f.Ciphertext = ""
	b, err := json.Marshal(f)
	if err != nil {
		panic(err) // plain struct of strings and ints
	}
	return b
}

// KeyInfo describes a stored key without its secret.
type KeyInfo struct {
	Name      string    `json:"name"`
	Address   Address   `json:"address"`
	PublicKey PublicKey `json:"-"`
	Path      string    `json:"path"`
}

// Keystore is a directory of encrypted key files, one per key.
type Keystore struct {
	Dir    string
	Scrypt ScryptParams // for new keys; zero means DefaultScrypt
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

func (ks *Keystore) path(name string) string { return filepath.Join(ks.Dir, name+".key.json") }

// Create generates a key, encrypts it under passphrase and stores it.
func (ks *Keystore) Create(name, passphrase string) (KeyInfo, error) {
	k, err := GenerateKey(nil)
	if err != nil {
		return KeyInfo{}, err
	}
	return ks.Import(name, k, passphrase)
}

// Import stores an existing key under name.
func (ks *Keystore) Import(name string, k PrivateKey, passphrase string) (KeyInfo, error) {
	if !nameRE.MatchString(name) {
		return KeyInfo{}, fmt.Errorf("key name %q: use letters, digits, '.', '_' or '-' (at most 64)", name)
	}
	if passphrase == "" {
		return KeyInfo{}, errors.New("empty passphrase: set BOURSE_PASSPHRASE or use --passphrase-file")
	}
	params := ks.Scrypt
	if params == (ScryptParams{}) {
		params = DefaultScrypt
	}
	if err := params.validate(); err != nil {
		return KeyInfo{}, err
	}
	if err := os.MkdirAll(ks.Dir, 0o700); err != nil {
		return KeyInfo{}, fmt.Errorf("create keystore dir: %w", err)
	}
	p := ks.path(name)
	if _, err := os.Stat(p); err == nil {
		return KeyInfo{}, fmt.Errorf("key %q: %w", name, ErrKeyExists)
	}
	salt := make([]byte, 32)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := rand.Read(salt); err != nil {
		return KeyInfo{}, err
	}
	if _, err := rand.Read(nonce); err != nil {
		return KeyInfo{}, err
	}
	pub := k.Public()
	f := keyFile{
		Version:   1,
		Name:      name,
		Address:   pub.Address().String(),
		PublicKey: hex.EncodeToString(pub[:]),
		KDF:       kdfHeader{Name: "scrypt", ScryptParams: params, Salt: hex.EncodeToString(salt)},
		Cipher:    cipherHeader{Name: "xchacha20-poly1305", Nonce: hex.EncodeToString(nonce)},
	}
	aead, err := f.aead(passphrase)
	if err != nil {
		return KeyInfo{}, err
	}
	f.Ciphertext = hex.EncodeToString(aead.Seal(nil, nonce, k.seed(), f.header()))
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return KeyInfo{}, err
	}
	if err := writeFileAtomic(p, append(data, '\n'), 0o600); err != nil {
		return KeyInfo{}, fmt.Errorf("write key %q: %w", name, err)
	}
	return KeyInfo{Name: name, Address: pub.Address(), PublicKey: pub, Path: p}, nil
}

func (f keyFile) aead(passphrase string) (interface {
	Seal(dst, nonce, plaintext, ad []byte) []byte
	Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
}, error) {
	if f.KDF.Name != "scrypt" || f.Cipher.Name != "xchacha20-poly1305" {
		return nil, fmt.Errorf("unsupported key file: kdf %q cipher %q", f.KDF.Name, f.Cipher.Name)
	}
	if err := f.KDF.ScryptParams.validate(); err != nil {
		return nil, err
	}
	salt, err := hex.DecodeString(f.KDF.Salt)
	if err != nil || len(salt) < 16 {
		return nil, errors.New("key file: bad salt")
	}
	key, err := scrypt.Key([]byte(passphrase), salt, f.KDF.N, f.KDF.R, f.KDF.P, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	return chacha20poly1305.NewX(key)
}

// List returns the stored keys sorted by name. A missing directory is an
// empty keystore.
func (ks *Keystore) List() ([]KeyInfo, error) {
	entries, err := os.ReadDir(ks.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	var out []KeyInfo
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".key.json")
		if !ok || e.IsDir() {
			continue
		}
		f, err := ks.read(name)
		if err != nil {
			return nil, err
		}
		info, err := f.info(ks.path(name))
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", name, err)
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (f keyFile) info(path string) (KeyInfo, error) {
	raw, err := hex.DecodeString(f.PublicKey)
	if err != nil || len(raw) != len(PublicKey{}) {
		return KeyInfo{}, errors.New("bad public key in key file")
	}
	var pub PublicKey
	copy(pub[:], raw)
	if pub.Address().String() != f.Address {
		return KeyInfo{}, errors.New("key file address does not match its public key")
	}
	return KeyInfo{Name: f.Name, Address: pub.Address(), PublicKey: pub, Path: path}, nil
}

func (ks *Keystore) read(name string) (keyFile, error) {
	data, err := os.ReadFile(ks.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return keyFile{}, fmt.Errorf("key %q: %w", name, ErrKeyNotFound)
	}
	if err != nil {
		return keyFile{}, fmt.Errorf("read key %q: %w", name, err)
	}
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return keyFile{}, fmt.Errorf("key %q: corrupt key file: %w", name, err)
	}
	if f.Version != 1 {
		return keyFile{}, fmt.Errorf("key %q: unsupported version %d", name, f.Version)
	}
	return f, nil
}

// Find resolves a key by name or by bo1 address.
func (ks *Keystore) Find(nameOrAddr string) (KeyInfo, error) {
	keys, err := ks.List()
	if err != nil {
		return KeyInfo{}, err
	}
	for _, k := range keys {
		if k.Name == nameOrAddr || k.Address.String() == nameOrAddr {
			return k, nil
		}
	}
	return KeyInfo{}, fmt.Errorf("key %q: %w", nameOrAddr, ErrKeyNotFound)
}

// Unlock decrypts a key by name or address.
func (ks *Keystore) Unlock(nameOrAddr, passphrase string) (PrivateKey, error) {
	info, err := ks.Find(nameOrAddr)
	if err != nil {
		return PrivateKey{}, err
	}
	f, err := ks.read(info.Name)
	if err != nil {
		return PrivateKey{}, err
	}
	aead, err := f.aead(passphrase)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("unlock %q: %w", info.Name, err)
	}
	nonce, err1 := hex.DecodeString(f.Cipher.Nonce)
	ct, err2 := hex.DecodeString(f.Ciphertext)
	if err1 != nil || err2 != nil || len(nonce) != aeadNonceSize {
		return PrivateKey{}, fmt.Errorf("unlock %q: %w", info.Name, ErrWrongPassphrase)
	}
	seed, err := aead.Open(nil, nonce, ct, f.header())
	if err != nil {
		return PrivateKey{}, fmt.Errorf("unlock %q: %w", info.Name, ErrWrongPassphrase)
	}
	k, err := KeyFromSeed(seed)
	if err != nil || k.Public() != info.PublicKey {
		return PrivateKey{}, fmt.Errorf("unlock %q: %w", info.Name, ErrWrongPassphrase)
	}
	return k, nil
}

const aeadNonceSize = chacha20poly1305.NonceSizeX

// writeFileAtomic writes data to a temporary file in the same directory,
// syncs it and renames it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
