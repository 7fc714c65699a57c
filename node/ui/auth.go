package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bounds of the login scheme.
const (
	// CodeTTL is how long a login code minted by LoginCode stays valid.
	CodeTTL = 2 * time.Minute
	// SessionTTL is how long a session cookie is honoured.
	SessionTTL = 12 * time.Hour
	// MaxSessions caps live sessions; a new login past it ends the oldest.
	MaxSessions = 64
	// MaxUsedCodes caps the remembered spent codes (each is kept until it
	// would have expired); a login past it is refused until some expire.
	MaxUsedCodes = 1024
	// CookieName is the session cookie.
	CookieName = "bourse_ui"
	// maxSkew is how far in the future a code's expiry may lie beyond
	// CodeTTL (the CLI's clock and the daemon's are the same host's, or
	// close).
	maxSkew  = 30 * time.Second
	nonceLen = 16
)

// LoginCode mints a one-time login code for the daemon whose API token is
// token, valid until now+CodeTTL. The code is an expiry, a random nonce and
// an HMAC keyed by the token's SHA-256: it proves the token without
// carrying it, so the token never appears in a URL.
func LoginCode(token string, now time.Time) (string, error) {
	var nonce [nonceLen]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", fmt.Errorf("login code nonce: %w", err)
	}
	return loginCode(token, now, nonce), nil
}

func loginCode(token string, now time.Time, nonce [nonceLen]byte) string {
	key := sha256.Sum256([]byte(strings.TrimSpace(token)))
	exp := strconv.FormatInt(now.Add(CodeTTL).Unix(), 10)
	n := hex.EncodeToString(nonce[:])
	return exp + "." + n + "." + hex.EncodeToString(codeMAC(key, exp, n))
}

func codeMAC(key [32]byte, exp, nonce string) []byte {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte("bourse-ui-login\x00" + exp + "." + nonce))
	return m.Sum(nil)
}

// Errors of Auth.Redeem.
var (
	ErrBadCode     = errors.New("login code is malformed or not signed with this daemon's API token")
	ErrExpiredCode = errors.New("login code has expired: run 'bourse ui' again for a new link")
	ErrUsedCode    = errors.New("login code was already used: run 'bourse ui' again for a new link")
	ErrBusy        = errors.New("too many login codes redeemed recently: wait a minute and try again")
)

// Auth redeems login codes for sessions and checks session cookies. It is
// safe for concurrent use.
type Auth struct {
	key [32]byte // SHA-256 of the API token
	now func() time.Time

	mu       sync.Mutex
	used     map[string]time.Time // nonce -> code expiry
	sessions map[[32]byte]time.Time
}

// NewAuth returns the Auth of a daemon whose API token hashes (SHA-256) to
// tokenHash. now is the clock (nil: time.Now).
func NewAuth(tokenHash [32]byte, now func() time.Time) *Auth {
	if now == nil {
		now = time.Now
	}
	return &Auth{key: tokenHash, now: now, used: map[string]time.Time{}, sessions: map[[32]byte]time.Time{}}
}

// Redeem checks a login code and spends it: a code works once, before its
// expiry, and only if its expiry lies at most CodeTTL ahead. It returns a
// new session id for the cookie.
func (a *Auth) Redeem(code string) (string, error) {
	parts := strings.Split(code, ".")
	if len(code) > 200 || len(parts) != 3 || len(parts[1]) != 2*nonceLen {
		return "", ErrBadCode
	}
	exp, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || parts[0] != strconv.FormatInt(exp, 10) {
		return "", ErrBadCode
	}
	// Compared as lowercase hex, so a code has one spelling only.
	want := hex.EncodeToString(codeMAC(a.key, parts[0], parts[1]))
	if !hmac.Equal([]byte(parts[2]), []byte(want)) {
		return "", ErrBadCode
	}
	now := a.now()
	expiry := time.Unix(exp, 0)
	if !now.Before(expiry) {
		return "", ErrExpiredCode
	}
	if expiry.After(now.Add(CodeTTL + maxSkew)) {
		return "", ErrBadCode
	}
	var sid [32]byte
	if _, err := rand.Read(sid[:]); err != nil {
		return "", fmt.Errorf("session id: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for n, e := range a.used {
		if !now.Before(e) {
			delete(a.used, n)
		}
	}
	if _, ok := a.used[parts[1]]; ok {
		return "", ErrUsedCode
	}
	if len(a.used) >= MaxUsedCodes {
		return "", ErrBusy
	}
	a.used[parts[1]] = expiry
	a.pruneSessions(now)
	if len(a.sessions) >= MaxSessions {
		var oldest [32]byte
		var oldestExp time.Time
		for k, e := range a.sessions {
			if oldestExp.IsZero() || e.Before(oldestExp) {
				oldest, oldestExp = k, e
			}
		}
		delete(a.sessions, oldest)
	}
	id := hex.EncodeToString(sid[:])
	a.sessions[sha256.Sum256([]byte(id))] = now.Add(SessionTTL)
	return id, nil
}

func (a *Auth) pruneSessions(now time.Time) {
	for k, e := range a.sessions {
		if !now.Before(e) {
			delete(a.sessions, k)
		}
	}
}

// Valid reports whether the request carries a live session cookie.
func (a *Auth) Valid(r *http.Request) bool {
	c, err := r.Cookie(CookieName)
	if err != nil || len(c.Value) != 64 {
		return false
	}
	// Sessions are keyed by the id's hash: a lookup's timing says
	// nothing useful about the ids.
	h := sha256.Sum256([]byte(c.Value))
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.sessions[h]
	return ok && a.now().Before(e)
}

// Logout ends the request's session, if any.
func (a *Auth) Logout(r *http.Request) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return
	}
	h := sha256.Sum256([]byte(c.Value))
	a.mu.Lock()
	delete(a.sessions, h)
	a.mu.Unlock()
}
