package httpapi

import (
	"net/http"
	"strings"
)

// isUI reports whether r is for the dashboard (node/ui), which does its
// own authentication: a one-time login code for a session cookie.
func isUI(r *http.Request) bool {
	return r.URL.Path == "/ui" || strings.HasPrefix(r.URL.Path, "/ui/")
}

// uiSession reports whether r may be answered on the dashboard's session
// cookie instead of the bearer token: only reads (GET and HEAD) of /v1/,
// so a forged cross-site request could change nothing even if a browser
// sent the SameSite=Strict cookie along.
func (s *Server) uiSession(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		strings.HasPrefix(r.URL.Path, "/v1/") && s.uiAuth.Valid(r)
}
