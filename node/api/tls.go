package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// ErrPlaintextToken is returned by NewClient for a plain-HTTP address that
// is not this machine's loopback: the bearer token would cross the network
// in clear.
var ErrPlaintextToken = errors.New("refusing to send the API token over plain HTTP beyond loopback")

// ErrFingerprintMismatch is returned (wrapped) by calls through a
// PinnedHTTPClient when the server's certificate is not the pinned one.
var ErrFingerprintMismatch = errors.New("the API's TLS certificate does not match the pinned fingerprint")

// IsLoopbackHost reports whether host (a name or IP, no port) is this
// machine's loopback: "localhost", 127.0.0.0/8 or ::1.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// ParseFingerprint reads a SHA-256 certificate fingerprint: 64 hex digits,
// upper or lower case, with or without colons between bytes (as `openssl
// x509 -fingerprint -sha256` prints it) and an optional "sha256:" prefix.
func ParseFingerprint(s string) ([]byte, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimPrefix(strings.TrimPrefix(t, "sha256:"), "SHA256:")
	t = strings.ReplaceAll(t, ":", "")
	b, err := hex.DecodeString(t)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("api fingerprint %q: want the 64 hex digits of a SHA-256 certificate fingerprint", s)
	}
	return b, nil
}

// PinnedHTTPClient returns an HTTP client that accepts exactly one server
// certificate: the one whose SHA-256 (of the DER encoding) is fingerprint.
// Names and issuers are not checked: the daemon's certificate is
// self-signed, and the pin is what identifies it.
func PinnedHTTPClient(fingerprint string) (*http.Client, error) {
	want, err := ParseFingerprint(fingerprint)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrFingerprintMismatch
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(got[:], want) != 1 {
				return fmt.Errorf("%w: server presented %x", ErrFingerprintMismatch, got)
			}
			return nil
		},
	}
	return &http.Client{Transport: tr}, nil
}
