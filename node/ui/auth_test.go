package ui

import (
	"crypto/sha256"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

const token = "the-api-token"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newAuth() (*Auth, *clock) {
	c := &clock{t: t0}
	return NewAuth(sha256.Sum256([]byte(token)), c.now), c
}

func mint(t *testing.T, tok string, at time.Time) string {
	t.Helper()
	code, err := LoginCode(tok, at)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(code, tok) {
		t.Fatalf("code %q carries the token", code)
	}
	return code
}

func withCookie(id string) *http.Request {
	r, _ := http.NewRequest("GET", "/v1/status", nil)
	r.AddCookie(&http.Cookie{Name: CookieName, Value: id})
	return r
}

func TestLoginCodeWorksOnceAndItsSessionUntilItsTTL(t *testing.T) {
	a, c := newAuth()
	code := mint(t, token, t0)
	id, err := a.Redeem(code)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Valid(withCookie(id)) {
		t.Fatal("fresh session not valid")
	}
	if _, err := a.Redeem(code); !errors.Is(err, ErrUsedCode) {
		t.Fatalf("replayed code: %v, want ErrUsedCode", err)
	}
	c.t = t0.Add(SessionTTL - time.Second)
	if !a.Valid(withCookie(id)) {
		t.Fatal("session ended before its TTL")
	}
	c.t = t0.Add(SessionTTL)
	if a.Valid(withCookie(id)) {
		t.Fatal("session valid at its TTL")
	}
}

func TestForgedStaleAndLongLivedCodesAreRefused(t *testing.T) {
	a, c := newAuth()
	if _, err := a.Redeem(mint(t, "another-token", t0)); !errors.Is(err, ErrBadCode) {
		t.Fatalf("code of another token: %v", err)
	}
	stale := mint(t, token, t0)
	c.t = t0.Add(CodeTTL)
	if _, err := a.Redeem(stale); !errors.Is(err, ErrExpiredCode) {
		t.Fatalf("code at its expiry: %v", err)
	}
	// A token holder cannot mint a code that lives longer than CodeTTL
	// (plus the clock skew allowed): the bound is at the daemon.
	c.t = t0
	if _, err := a.Redeem(mint(t, token, t0.Add(maxSkew))); err != nil {
		t.Fatalf("code at the skew bound: %v", err)
	}
	if _, err := a.Redeem(mint(t, token, t0.Add(maxSkew+time.Second))); !errors.Is(err, ErrBadCode) {
		t.Fatalf("code past the skew bound: %v", err)
	}
	good := mint(t, token, t0)
	parts := strings.Split(good, ".")
	exp, _ := strconv.ParseInt(parts[0], 10, 64)
	for _, bad := range []string{"", "x", "1.2.3", parts[0] + "." + parts[1] + "." + strings.Repeat("0", 64),
		strconv.FormatInt(exp+1, 10) + "." + parts[1] + "." + parts[2], "0" + good, good + "." + good} {
		if _, err := a.Redeem(bad); !errors.Is(err, ErrBadCode) {
			t.Fatalf("Redeem(%q): %v, want ErrBadCode", bad, err)
		}
	}
	if a.Valid(withCookie(strings.Repeat("ab", 32))) {
		t.Fatal("made-up session id valid")
	}
}

func TestSessionsAreCappedOldestOut(t *testing.T) {
	a, c := newAuth()
	var ids []string
	for i := range MaxSessions + 1 {
		c.t = t0.Add(time.Duration(i) * time.Millisecond)
		id, err := a.Redeem(mint(t, token, c.t))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if a.Valid(withCookie(ids[0])) {
		t.Fatal("oldest session survived the cap")
	}
	for _, id := range ids[1:] {
		if !a.Valid(withCookie(id)) {
			t.Fatal("a session within the cap ended")
		}
	}
}

func TestFloodOfSpentCodesIsBoundedAndForgotten(t *testing.T) {
	a, c := newAuth()
	for range MaxUsedCodes {
		if _, err := a.Redeem(mint(t, token, t0)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Redeem(mint(t, token, t0)); !errors.Is(err, ErrBusy) {
		t.Fatalf("code past MaxUsedCodes: %v, want ErrBusy", err)
	}
	// Once the spent codes have expired they are forgotten.
	c.t = t0.Add(CodeTTL)
	if _, err := a.Redeem(mint(t, token, c.t)); err != nil {
		t.Fatalf("after the spent codes expired: %v", err)
	}
	if len(a.used) != 1 {
		t.Fatalf("%d spent codes remembered, want 1", len(a.used))
	}
}

func FuzzRedeem(f *testing.F) {
	good := loginCode(token, t0, [nonceLen]byte{1, 2, 3})
	f.Add(good)
	f.Add("1.2.3")
	f.Fuzz(func(t *testing.T, code string) {
		a, _ := newAuth()
		if _, err := a.Redeem(code); err == nil && code != good {
			t.Fatalf("Redeem(%q) accepted a code not minted with the token", code)
		}
	})
}
