package ui

import (
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed assets
var assets embed.FS

// Handler serves the dashboard under /ui: /ui/login exchanges a login code
// for a session cookie, everything else needs that session.
type Handler struct {
	auth   *Auth
	static http.Handler
}

// NewHandler serves the embedded dashboard with auth's sessions.
func NewHandler(auth *Auth) *Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embed pattern above guarantees the directory
	}
	return &Handler{auth: auth, static: http.StripPrefix("/ui/", http.FileServerFS(sub))}
}

// csp allows only the dashboard's own files and calls to its own origin.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", csp)
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
	switch p := r.URL.Path; {
	case p == "/ui/login":
		h.login(w, r)
	case p == "/ui/logout":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			page(w, http.StatusMethodNotAllowed, "Log out with POST (the dashboard's button).")
			return
		}
		h.auth.Logout(r)
		http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		page(w, http.StatusOK, "Logged out. Run 'bourse ui' for a new login link.")
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		page(w, http.StatusMethodNotAllowed, "The dashboard only answers GET.")
	case !h.auth.Valid(r):
		page(w, http.StatusUnauthorized, "Not logged in (or the session expired). Run 'bourse ui' on the node's host and open the link it prints.")
	case p == "/ui":
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
	default:
		h.static.ServeHTTP(w, r)
	}
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		page(w, http.StatusMethodNotAllowed, "Open the login link in a browser.")
		return
	}
	sid, err := h.auth.Redeem(r.URL.Query().Get("code"))
	if err != nil {
		status := http.StatusUnauthorized
		if errors.Is(err, ErrBusy) {
			status = http.StatusTooManyRequests
		}
		page(w, status, "Cannot log in: "+err.Error()+".")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: sid, Path: "/", MaxAge: int(SessionTTL.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	// A redirect drops the spent code from the address bar and history.
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bourse</title></head>
<body><main class="notice"><h1>Bourse</h1><p>{{.}}</p></main></body></html>
`))

func page(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, strings.TrimSpace(msg))
}
