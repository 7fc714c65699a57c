// Package ui is the daemon's dashboard, served by node/httpapi under /ui:
// Chain (height, block interval, validators and stake), Market (offers
// with their load, bids, recent matches and where each landed), Providers
// (load, share of matches and Jain's fairness index over time, earnings,
// track record) and Jobs (states, latency distribution). The pages are
// embedded in the binary (assets/): one HTML page, a stylesheet and plain
// JavaScript that reads the API and GET /v1/events and draws SVG by hand;
// no CDN, no third-party code.
//
// # Login
//
// The API token never goes into a URL. 'bourse ui' mints a login code with
// LoginCode: an expiry (now+CodeTTL), a random nonce and an HMAC-SHA256 of
// both keyed by the token's SHA-256. Auth.Redeem checks the MAC, the
// expiry (and that it lies no more than CodeTTL ahead), spends the nonce
// (MaxUsedCodes remembered until they expire) and opens a session
// (SessionTTL, at most MaxSessions, oldest out) whose random id goes into
// an HttpOnly, SameSite=Strict cookie; only its hash is kept. The session
// reads /v1/ with GET and HEAD only, so the dashboard cannot change
// anything, and a forged cross-site request could not either.
//
// Every page is served with a Content-Security-Policy that allows only the
// dashboard's own files and calls to its own origin.
//
// May import: the standard library only.
package ui
