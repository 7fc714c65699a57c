package node

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bourse-net/bourse/p2p"
	"github.com/bourse-net/bourse/wallet"
)

// Files in a node's home directory.
const (
	ConfigFile   = "config.toml"
	NodeKeyFile  = p2p.NodeKeyFile // libp2p identity (not a wallet key)
	APITokenFile = "api.token"     // bearer token for the HTTP API, mode 0600
	KeysDir      = "keys"          // encrypted wallet keystore
	PIDFile      = "daemon.pid"
)

// ErrHomeExists is returned by InitHome for a home that already holds a
// configuration.
var ErrHomeExists = errors.New("home already initialised")

// InitOptions are the inputs of InitHome.
type InitOptions struct {
	Home       string
	Config     Config              // written as config.toml
	Passphrase string              // encrypts the first wallet key
	Scrypt     wallet.ScryptParams // zero: wallet.DefaultScrypt
	WalletKey  *wallet.PrivateKey  // import this key instead of generating one
}

// InitResult reports what InitHome created.
type InitResult struct {
	Home    string         `json:"home"`
	ChainID string         `json:"chain_id"`
	PeerID  string         `json:"peer_id"`
	Wallet  wallet.KeyInfo `json:"wallet"`
	// APIFingerprint is the SHA-256 of the API's TLS certificate (see
	// APIFingerprint).
	APIFingerprint string `json:"api_fingerprint"`
}

// InitHome creates a node home: config.toml, the libp2p node key, the API
// token (mode 0600), the API's self-signed TLS certificate and a first
// wallet key named by Config.Wallet.Key.
func InitHome(o InitOptions) (InitResult, error) {
	if err := o.Config.Validate(); err != nil {
		return InitResult{}, err
	}
	cfgPath := filepath.Join(o.Home, ConfigFile)
	if _, err := os.Stat(cfgPath); err == nil {
		return InitResult{}, fmt.Errorf("%s: %w", o.Home, ErrHomeExists)
	}
	if err := os.MkdirAll(o.Home, 0o700); err != nil {
		return InitResult{}, fmt.Errorf("create home: %w", err)
	}
	ks := Keystore(o.Home)
	ks.Scrypt = o.Scrypt
	var info wallet.KeyInfo
	var err error
	if o.WalletKey != nil {
		info, err = ks.Import(o.Config.Wallet.Key, *o.WalletKey, o.Passphrase)
	} else {
		info, err = ks.Create(o.Config.Wallet.Key, o.Passphrase)
	}
	if err != nil {
		return InitResult{}, fmt.Errorf("create wallet key: %w", err)
	}
	peerID, err := createNodeKey(filepath.Join(o.Home, NodeKeyFile))
	if err != nil {
		return InitResult{}, err
	}
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return InitResult{}, err
	}
	if err := writeFileExcl(filepath.Join(o.Home, APITokenFile), []byte(hex.EncodeToString(tok)+"\n")); err != nil {
		return InitResult{}, fmt.Errorf("write api token: %w", err)
	}
	if err := CreateAPICert(o.Config.homePath(o.Home, o.Config.API.TLSCert), o.Config.homePath(o.Home, o.Config.API.TLSKey), o.Config.Moniker); err != nil {
		return InitResult{}, err
	}
	fp, err := APIFingerprint(o.Home, o.Config)
	if err != nil {
		return InitResult{}, err
	}
	// The config goes last: its presence marks a complete home.
	if err := writeFileExcl(cfgPath, RenderConfig(o.Config)); err != nil {
		return InitResult{}, fmt.Errorf("write config: %w", err)
	}
	return InitResult{Home: o.Home, ChainID: o.Config.ChainID, PeerID: peerID, Wallet: info, APIFingerprint: fp}, nil
}

// Keystore is the wallet keystore of a home.
func Keystore(home string) *wallet.Keystore {
	return &wallet.Keystore{Dir: filepath.Join(home, KeysDir)}
}

func createNodeKey(path string) (string, error) {
	priv, err := p2p.LoadOrCreateIdentity(path)
	if err != nil {
		return "", fmt.Errorf("node key: %w", err)
	}
	return peerIDOf(priv)
}

func writeFileExcl(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadAPIToken reads the bearer token of a home.
func ReadAPIToken(home string) (string, error) {
	b, err := os.ReadFile(filepath.Join(home, APITokenFile))
	if err != nil {
		return "", fmt.Errorf("read api token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
