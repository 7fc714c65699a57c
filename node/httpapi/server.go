package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/ui"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Defaults of Options.
const (
	DefaultMaxJSON           = 1 << 20
	DefaultMaxUpload         = 64 << 20
	DefaultRequestTimeout    = 30 * time.Second
	DefaultHeartbeat         = 15 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 5 * time.Minute
	DefaultWriteTimeout      = 5 * time.Minute
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultShutdownTimeout   = 10 * time.Second
)

// Options tune the server. Zero values take the defaults above.
type Options struct {
	// MaxJSON caps a JSON request body (default 1 MiB).
	MaxJSON int64
	// MaxUpload caps a job payload upload (default 64 MiB; the daemon sets
	// it from api.max_upload_mib).
	MaxUpload int64
	// RequestTimeout bounds every call but the event stream, uploads and
	// result downloads (default 30s).
	RequestTimeout time.Duration
	// Heartbeat is the interval of keep-alive comments on the event stream
	// (default 15s).
	Heartbeat time.Duration
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are the
	// http.Server timeouts used by Serve. The event stream lifts the write
	// deadline for itself.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown Serve does when its
	// context ends (default 10s).
	ShutdownTimeout time.Duration
	// Gatherer is served at /metrics; nil makes /metrics answer 503.
	Gatherer prometheus.Gatherer
	// Registerer receives the API's own request metrics; nil: none.
	Registerer prometheus.Registerer
	// Logger; nil is slog.Default().
	Logger *slog.Logger
	// TLS, when set, makes Serve answer HTTPS with this configuration.
	// Without it Serve refuses a listener that is not on a loopback
	// address: the bearer token must not cross a network in clear.
	TLS *tls.Config
}

func (o Options) withDefaults() Options {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.MaxJSON <= 0 {
		o.MaxJSON = DefaultMaxJSON
	}
	if o.MaxUpload <= 0 {
		o.MaxUpload = DefaultMaxUpload
	}
	def(&o.RequestTimeout, DefaultRequestTimeout)
	def(&o.Heartbeat, DefaultHeartbeat)
	def(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&o.ReadTimeout, DefaultReadTimeout)
	def(&o.WriteTimeout, DefaultWriteTimeout)
	def(&o.IdleTimeout, DefaultIdleTimeout)
	def(&o.ShutdownTimeout, DefaultShutdownTimeout)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Server is the daemon's HTTP API. It is an http.Handler; Serve runs it on
// a listener with timeouts and shuts it down gracefully.
type Server struct {
	b         Backend
	tokenHash [32]byte
	opts      Options
	log       *slog.Logger
	mux       *http.ServeMux
	metrics   *metrics
	ui        *ui.Handler
	uiAuth    *ui.Auth

	// streams ends the long-lived event streams on Shutdown.
	streams      context.Context
	cancelStream context.CancelFunc

	mu  sync.Mutex
	srv *http.Server
}

// New returns the API server for b. Every request must carry
// "Authorization: Bearer <token>"; token must not be empty.
func New(b Backend, token string, opts Options) (*Server, error) {
	if b == nil {
		return nil, errors.New("httpapi: nil backend")
	}
	if strings.TrimSpace(token) == "" {
		return nil, errors.New("httpapi: empty api token")
	}
	opts = opts.withDefaults()
	s := &Server{b: b, tokenHash: sha256.Sum256([]byte(token)), opts: opts, log: opts.Logger, mux: http.NewServeMux()}
	s.streams, s.cancelStream = context.WithCancel(context.Background())
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.uiAuth = ui.NewAuth(s.tokenHash, nil)
	s.ui = ui.NewHandler(s.uiAuth)
	s.routes()
	return s, nil
}

// ServeHTTP authenticates the request, finds its route and answers JSON
// errors for unknown paths and methods.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w}
	_, pattern := s.mux.Handler(r)
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("api handler panic", "method", r.Method, "path", r.URL.Path, "panic", p)
			if rw.status == 0 {
				writeError(rw, &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal, Message: "internal error"})
			}
		}
		s.metrics.observe(pattern, rw.code(), time.Since(start))
		if rw.code() >= 500 {
			s.log.Warn("api request failed", "method", r.Method, "path", r.URL.Path, "status", rw.code())
		} else {
			s.log.Debug("api request", "method", r.Method, "path", r.URL.Path, "status", rw.code(), "took", time.Since(start))
		}
	}()
	if isUI(r) {
		pattern = "/ui"
		s.ui.ServeHTTP(rw, r)
		return
	}
	if !s.authorized(r) && !s.uiSession(r) {
		rw.Header().Set("WWW-Authenticate", `Bearer realm="bourse"`)
		writeError(rw, &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized,
			Message: "missing or wrong bearer token: send 'Authorization: Bearer <token>' with the token from api.token in the node home"})
		return
	}
	if pattern == "" {
		s.noRoute(rw, r)
		return
	}
	s.mux.ServeHTTP(rw, r)
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) == 1
}

// noRoute answers 405 when the path exists for another method, else 404.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := s.mux.Handler(probe); p != "" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, &api.Error{Status: http.StatusMethodNotAllowed, Code: api.CodeMethodNotAllowed,
			Message: fmt.Sprintf("%s %s: method not allowed (use %s)", r.Method, r.URL.Path, strings.Join(allowed, " or "))})
		return
	}
	writeError(w, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound,
		Message: fmt.Sprintf("no such endpoint: %s %s (see /v1/openapi.yaml)", r.Method, r.URL.Path)})
}

// Serve answers requests on ln until ctx ends, then shuts down gracefully
// (bounded by Options.ShutdownTimeout). It returns nil after a clean
// shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.opts.TLS == nil && !loopbackListener(ln) {
		return fmt.Errorf("serve api on %s: %w", ln.Addr(), ErrPlaintextOffLoopback)
	}
	if s.opts.TLS != nil {
		ln = tls.NewListener(ln, s.opts.TLS)
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.mu.Lock()
	if s.srv != nil {
		s.mu.Unlock()
		return errors.New("httpapi: Serve called twice")
	}
	s.srv = srv
	s.mu.Unlock()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		s.cancelStream()
		return fmt.Errorf("serve api on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	err := s.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// ErrPlaintextOffLoopback is returned by Serve for a listener beyond
// loopback without Options.TLS.
var ErrPlaintextOffLoopback = errors.New("refusing to serve the API in plain HTTP beyond loopback: configure TLS (api.tls = true)")

// loopbackListener reports whether ln accepts only loopback connections:
// a TCP address in 127.0.0.0/8 or ::1, or a Unix socket.
func loopbackListener(ln net.Listener) bool {
	switch a := ln.Addr().(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}

// Shutdown ends the event streams, stops accepting connections and waits
// for in-flight requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.cancelStream()
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
		return fmt.Errorf("shut down api: %w", err)
	}
	return nil
}

// statusWriter remembers the status for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach Flush and SetWriteDeadline.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "bourse", Subsystem: "api", Name: "requests_total",
			Help: "API requests by route and HTTP status.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "bourse", Subsystem: "api", Name: "request_duration_seconds",
			Help: "API request latency by route.", Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register api metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observe(route string, code int, d time.Duration) {
	if m == nil {
		return
	}
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

func (s *Server) metricsHandler() http.Handler {
	if s.opts.Gatherer == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable, Message: "this node exposes no metrics registry"})
		})
	}
	return promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)})
}
