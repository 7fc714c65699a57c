package node

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files of the API's TLS certificate in the home (api.tls_cert and
// api.tls_key by default).
const (
	APICertFile = "api.crt"
	APIKeyFile  = "api.key" // mode 0600
)

// apiCertValidity is how long a certificate made by init is valid. Clients
// pin the certificate's fingerprint rather than trust a CA, so expiry is
// not what protects them; it is long so that a running network does not
// stop answering one day.
const apiCertValidity = 10 * 365 * 24 * time.Hour

func (c Config) homePath(home, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(home, p)
}

// CreateAPICert makes a self-signed ECDSA P-256 certificate for the API
// and writes it to certPath (0644) and its key to keyPath (0600). It never
// overwrites: an existing file is an error wrapping fs.ErrExist.
func CreateAPICert(certPath, keyPath, moniker string) error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("api certificate: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return fmt.Errorf("api certificate: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "bourse api " + moniker},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(apiCertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return fmt.Errorf("api certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("api certificate: %w", err)
	}
	if err := writeFileExcl(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})); err != nil {
		return fmt.Errorf("write api key: %w", err)
	}
	if err := writeFileExcl(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return fmt.Errorf("write api certificate: %w", err)
	}
	return os.Chmod(certPath, 0o644)
}

// LoadAPICert reads the home's API certificate and key (api.tls_cert,
// api.tls_key) for the server, creating them when neither exists (a home
// made before the API had TLS).
func LoadAPICert(home string, cfg Config) (tls.Certificate, error) {
	certPath, keyPath := cfg.homePath(home, cfg.API.TLSCert), cfg.homePath(home, cfg.API.TLSKey)
	_, cerr := os.Stat(certPath)
	_, kerr := os.Stat(keyPath)
	if errors.Is(cerr, fs.ErrNotExist) && errors.Is(kerr, fs.ErrNotExist) {
		if err := CreateAPICert(certPath, keyPath, cfg.Moniker); err != nil {
			return tls.Certificate{}, err
		}
	}
	if st, err := os.Stat(keyPath); err == nil && st.Mode().Perm()&0o077 != 0 {
		return tls.Certificate{}, fmt.Errorf("api key %s: mode %v is readable by others, want 0600", keyPath, st.Mode().Perm())
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load api certificate (api.tls_cert, api.tls_key): %w", err)
	}
	return cert, nil
}

// APIFingerprint is the fingerprint clients pin for the home's API: the
// SHA-256 of the certificate (DER), in hex, as `openssl x509 -fingerprint
// -sha256` prints it without the colons. The error wraps fs.ErrNotExist
// when the home has no certificate.
func APIFingerprint(home string, cfg Config) (string, error) {
	p := cfg.homePath(home, cfg.API.TLSCert)
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read api certificate: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return "", fmt.Errorf("api certificate %s: not a PEM certificate", p)
	}
	sum := sha256.Sum256(blk.Bytes)
	return hex.EncodeToString(sum[:]), nil
}
