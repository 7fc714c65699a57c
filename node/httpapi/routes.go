package httpapi

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/wallet"
)

func (s *Server) routes() {
	h := s.mux.Handle
	// Short calls run under RequestTimeout.
	short := func(pattern string, f func(http.ResponseWriter, *http.Request) error) {
		h(pattern, s.call(f, true))
	}
	long := func(pattern string, f func(http.ResponseWriter, *http.Request) error) {
		h(pattern, s.call(f, false))
	}
	s.serviceRoutes(short, long)
	short("GET /v1/status", func(w http.ResponseWriter, r *http.Request) error {
		return reply(w, s.b.Status)(r.Context())
	})
	short("GET /v1/chain/blocks/latest", func(w http.ResponseWriter, r *http.Request) error {
		return reply(w, s.b.LatestBlock)(r.Context())
	})
	short("GET /v1/chain/blocks/{height}", func(w http.ResponseWriter, r *http.Request) error {
		hgt, err := strconv.ParseUint(r.PathValue("height"), 10, 64)
		if err != nil {
			return api.BadRequest("block height %q: want a non-negative integer or 'latest'", r.PathValue("height"))
		}
		return writeResult(w)(s.b.Block(r.Context(), hgt))
	})
	short("GET /v1/chain/txs/{hash}", func(w http.ResponseWriter, r *http.Request) error {
		hash, err := parseHash("transaction hash", r.PathValue("hash"))
		if err != nil {
			return err
		}
		return writeResult(w)(s.b.Tx(r.Context(), hash))
	})
	short("GET /v1/chain/validators", func(w http.ResponseWriter, r *http.Request) error {
		return reply(w, s.b.Validators)(r.Context())
	})
	short("GET /v1/accounts/{addr}", func(w http.ResponseWriter, r *http.Request) error {
		addr, err := wallet.ParseAddress(r.PathValue("addr"))
		if err != nil {
			return api.BadRequest("address %q: %v", r.PathValue("addr"), err)
		}
		return writeResult(w)(s.b.Account(r.Context(), addr))
	})
	short("GET /v1/market/offers", func(w http.ResponseWriter, r *http.Request) error {
		return reply(w, s.b.Offers)(r.Context())
	})
	short("GET /v1/market/bids", func(w http.ResponseWriter, r *http.Request) error {
		return reply(w, s.b.Bids)(r.Context())
	})
	short("GET /v1/market/matches", func(w http.ResponseWriter, r *http.Request) error {
		f, err := matchFilter(r)
		if err != nil {
			return err
		}
		return writeResult(w)(s.b.Matches(r.Context(), f))
	})
	short("GET /v1/market/matches/{id}", func(w http.ResponseWriter, r *http.Request) error {
		id, err := parseHash("match id", r.PathValue("id"))
		if err != nil {
			return err
		}
		return writeResult(w)(s.b.Match(r.Context(), id))
	})
	short("GET /v1/market/stats", func(w http.ResponseWriter, r *http.Request) error {
		f, err := matchFilter(r)
		if err != nil {
			return err
		}
		return writeResult(w)(s.b.MarketStats(r.Context(), f.FromHeight, f.ToHeight))
	})
	long("POST /v1/jobs", s.submitJob)
	short("POST /v1/jobs/dry-run", func(w http.ResponseWriter, r *http.Request) error {
		data, err := s.readBody(w, r, s.opts.MaxJSON)
		if err != nil {
			return err
		}
		spec, err := api.ParseJobSpec(data)
		if err != nil {
			return err
		}
		return writeResult(w)(s.b.DryRun(r.Context(), spec))
	})
	short("GET /v1/jobs", func(w http.ResponseWriter, r *http.Request) error {
		f := api.JobFilter{State: r.URL.Query().Get("state")}
		if f.State != "" && !validState(f.State) {
			return api.BadRequest("state %q: unknown job state", f.State)
		}
		var err error
		if f.Limit, err = queryInt(r, "limit"); err != nil {
			return err
		}
		return writeResult(w)(s.b.Jobs(r.Context(), f))
	})
	short("GET /v1/jobs/{id}", s.withJobID(func(w http.ResponseWriter, r *http.Request, id string) error {
		return writeResult(w)(s.b.Job(r.Context(), id))
	}))
	short("GET /v1/jobs/{id}/logs", s.withJobID(func(w http.ResponseWriter, r *http.Request, id string) error {
		return writeResult(w)(s.b.JobLogs(r.Context(), id))
	}))
	long("GET /v1/jobs/{id}/result", s.withJobID(s.jobResult))
	short("POST /v1/jobs/{id}/cancel", s.withJobID(func(w http.ResponseWriter, r *http.Request, id string) error {
		if err := s.emptyBody(w, r); err != nil {
			return err
		}
		return writeResult(w)(s.b.CancelJob(r.Context(), id))
	}))
	// As long as the job runs (its timeout bounds it), which may be longer
	// than the server's write timeout: this answer has none.
	long("POST /v1/jobs/{id}/verify", s.withJobID(func(w http.ResponseWriter, r *http.Request, id string) error {
		if err := s.emptyBody(w, r); err != nil {
			return err
		}
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
		return writeResult(w)(s.b.VerifyJob(r.Context(), id))
	}))
	// Waits for the challenge transaction to commit (a few blocks).
	long("POST /v1/jobs/{id}/challenge", s.withJobID(func(w http.ResponseWriter, r *http.Request, id string) error {
		var req api.ChallengeRequest
		if err := s.decodeJSON(w, r, &req); err != nil {
			return err
		}
		return writeResult(w)(s.b.ChallengeJob(r.Context(), id, req.Kind))
	}))
	short("POST /v1/wallet/send", func(w http.ResponseWriter, r *http.Request) error {
		var req api.SendRequest
		if err := s.decodeJSON(w, r, &req); err != nil {
			return err
		}
		to, err := wallet.ParseAddress(req.To)
		if err != nil {
			return api.BadRequest("to %q: %v", req.To, err)
		}
		if req.Amount == 0 {
			return api.BadRequest("amount: must be positive")
		}
		return writeResult(w)(s.b.Send(r.Context(), to, req.Amount))
	})
	short("POST /v1/txs", s.submitTxs)
	short("GET /v1/provider", func(w http.ResponseWriter, r *http.Request) error {
		return reply(w, s.b.ProviderStatus)(r.Context())
	})
	short("POST /v1/provider/register", func(w http.ResponseWriter, r *http.Request) error {
		var req api.RegisterRequest
		if err := s.decodeJSON(w, r, &req); err != nil {
			return err
		}
		if req.Collateral == 0 {
			return api.BadRequest("collateral: must be positive")
		}
		return writeResult(w)(s.b.ProviderRegister(r.Context(), req.Collateral))
	})
	short("POST /v1/provider/deregister", func(w http.ResponseWriter, r *http.Request) error {
		return writeResult(w)(s.b.ProviderDeregister(r.Context()))
	})
	short("POST /v1/provider/withdraw", func(w http.ResponseWriter, r *http.Request) error {
		return writeResult(w)(s.b.ProviderWithdraw(r.Context()))
	})
	stake := func(f func(context.Context, uint64) (api.TxResult, error)) func(http.ResponseWriter, *http.Request) error {
		return func(w http.ResponseWriter, r *http.Request) error {
			var req api.AmountRequest
			if err := s.decodeJSON(w, r, &req); err != nil {
				return err
			}
			if req.Amount == 0 {
				return api.BadRequest("amount: must be positive")
			}
			return writeResult(w)(f(r.Context(), req.Amount))
		}
	}
	short("POST /v1/stake/bond", stake(s.b.Bond))
	short("POST /v1/stake/unbond", stake(s.b.Unbond))
	long("GET /v1/events", s.events)
	h("GET /metrics", s.metricsHandler())
	short("GET /v1/openapi.yaml", func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/yaml")
		_, err := w.Write(api.OpenAPI)
		return err
	})
}

// call adapts a handler that returns an error: the error is written as
// JSON with its status. Short calls get the request timeout.
func (s *Server) call(f func(http.ResponseWriter, *http.Request) error, short bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if short {
			ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		if err := f(w, r); err != nil {
			if errors.Is(err, context.DeadlineExceeded) && r.Context().Err() != nil {
				err = &api.Error{Status: http.StatusGatewayTimeout, Code: api.CodeTimeout,
					Message: fmt.Sprintf("%s %s: the node did not answer within %s", r.Method, r.URL.Path, s.opts.RequestTimeout)}
			}
			if sw, ok := w.(*statusWriter); ok && sw.status != 0 {
				// Headers are out (a download broke midway): nothing
				// can be said to the client but closing.
				s.log.Warn("api response broken", "path", r.URL.Path, "err", err)
				return
			}
			writeError(w, err)
		}
	})
}

// reply calls a backend method without arguments and writes its result.
func reply[T any](w http.ResponseWriter, f func(context.Context) (T, error)) func(context.Context) error {
	return func(ctx context.Context) error { return writeResult(w)(f(ctx)) }
}

func writeResult(w http.ResponseWriter) func(any, error) error {
	return func(v any, err error) error {
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, v)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	// A nil slice is an empty list, not null.
	if bytes.Equal(data, []byte("null")) {
		data = []byte("[]")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, err = w.Write(append(data, '\n'))
	return err
}

func writeError(w http.ResponseWriter, err error) {
	status, code := api.StatusOf(err)
	msg := err.Error()
	if status == http.StatusInternalServerError && msg == "" {
		msg = "internal error"
	}
	data, _ := json.Marshal(api.ErrorBody{Error: api.Error{Code: code, Message: msg}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

func tooLarge(what string, limit int64) error {
	return &api.Error{Status: http.StatusRequestEntityTooLarge, Code: api.CodeTooLarge,
		Message: fmt.Sprintf("%s is larger than the %s limit", what, sizeString(limit))}
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d byte", n)
}

func checkJSONType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return &api.Error{Status: http.StatusUnsupportedMediaType, Code: api.CodeUnsupportedMedia,
			Message: fmt.Sprintf("content type %q: send application/json", ct)}
	}
	return nil
}

// readBody reads a JSON request body of at most limit bytes.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if err := checkJSONType(r); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooLarge("the request body", limit)
	}
	if err != nil {
		return nil, api.BadRequest("read request body: %v", err)
	}
	return data, nil
}

// decodeJSON decodes one JSON object into v, refusing unknown fields and
// trailing data, with a message that says where it went wrong.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := s.readBody(w, r, s.opts.MaxJSON)
	if err != nil {
		return err
	}
	return DecodeStrict(data, v)
}

// DecodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data. Its errors match api.ErrBadRequest and say
// what is wrong and where.
func DecodeStrict(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return api.BadRequest("empty request body: send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return api.BadRequest("invalid JSON at byte %d: %v", se.Offset, se)
		case errors.As(err, &te):
			if te.Field != "" {
				return api.BadRequest("field %q: cannot use a JSON %s here (want %s)", te.Field, te.Value, te.Type)
			}
			return api.BadRequest("cannot use a JSON %s here (want an object)", te.Value)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return api.BadRequest("invalid JSON: unexpected end of input")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return api.BadRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return api.BadRequest("invalid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return api.BadRequest("invalid JSON: data after the object")
	}
	return nil
}

// emptyBody refuses a body on calls that take none (anything but
// whitespace or {}).
func (s *Server) emptyBody(w http.ResponseWriter, r *http.Request) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxJSON))
	if err != nil {
		return tooLarge("the request body", s.opts.MaxJSON)
	}
	if t := bytes.TrimSpace(data); len(t) > 0 && !bytes.Equal(t, []byte("{}")) {
		return api.BadRequest("this call takes no request body")
	}
	return nil
}

func parseHash(what, s string) (string, error) {
	s = strings.ToLower(s)
	if b, err := hex.DecodeString(s); err != nil || len(b) != 32 {
		return "", api.BadRequest("%s %.80q: want 64 hex digits", what, s)
	}
	return s, nil
}

// ValidJobID reports whether id looks like a job id: 1-128 characters of
// [A-Za-z0-9_-].
func ValidJobID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (s *Server) withJobID(f func(http.ResponseWriter, *http.Request, string) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		id := r.PathValue("id")
		if !ValidJobID(id) {
			return api.BadRequest("job id %.80q: want letters, digits, '-' or '_' (1-128)", id)
		}
		return f(w, r, id)
	}
}

func validState(s string) bool {
	switch s {
	case api.StateSubmitted, api.StateBidding, api.StateMatched, api.StateRunning, api.StateResultCommitted,
		api.StatePaid, api.StateExpired, api.StateFailed, api.StateTimedOut, api.StateCancelled:
		return true
	}
	return false
}

func queryUint(r *http.Request, name string) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, api.BadRequest("query %s=%.40q: want a non-negative integer", name, v)
	}
	return n, nil
}

func queryInt(r *http.Request, name string) (int, error) {
	n, err := queryUint(r, name)
	if err != nil {
		return 0, err
	}
	if n > 1<<20 {
		return 0, api.BadRequest("query %s=%d: at most %d", name, n, 1<<20)
	}
	return int(n), nil
}

func matchFilter(r *http.Request) (api.MatchFilter, error) {
	var f api.MatchFilter
	var err error
	if f.FromHeight, err = queryUint(r, "from"); err != nil {
		return f, err
	}
	if f.ToHeight, err = queryUint(r, "to"); err != nil {
		return f, err
	}
	if f.ToHeight != 0 && f.FromHeight > f.ToHeight {
		return f, api.BadRequest("from %d is above to %d", f.FromHeight, f.ToHeight)
	}
	if f.Limit, err = queryInt(r, "limit"); err != nil {
		return f, err
	}
	return f, nil
}

// jobResult streams a result with its hash in Bourse-Result-Hash.
func (s *Server) jobResult(w http.ResponseWriter, r *http.Request, id string) error {
	rc, info, err := s.b.JobResult(r.Context(), id)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := parseHash("result hash", info.Hash); err != nil {
		return fmt.Errorf("job %s result: backend gave hash %q", id, info.Hash)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(api.HeaderResultHash, strings.ToLower(info.Hash))
	w.Header().Set("ETag", `"`+strings.ToLower(info.Hash)+`"`)
	if info.Size >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	}
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil {
		return fmt.Errorf("send result of job %s: %w", id, err)
	}
	return nil
}

// events streams api.Events as server-sent events until the client goes
// away or the server shuts down.
func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	rc := http.NewResponseController(w)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.streams, cancel)
	defer stop()
	ch := s.b.Subscribe(ctx)
	// The stream outlives WriteTimeout; each write gets its own deadline.
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, ": bourse event stream\n\n"); err != nil {
		return err
	}
	if err := rc.Flush(); err != nil {
		return fmt.Errorf("event stream: %w", err)
	}
	tick := time.NewTicker(s.opts.Heartbeat)
	defer tick.Stop()
	var seq uint64
	write := func(frame []byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
		if _, err := w.Write(frame); err != nil {
			return err
		}
		return rc.Flush()
	}
	for {
		select {
		case <-ctx.Done():
			// The backend closes ch; it never blocks on a subscriber.
			return nil
		case <-tick.C:
			if err := write([]byte(": keep-alive\n\n")); err != nil {
				return nil
			}
		case ev, ok := <-ch:
			if !ok {
				return nil
			}
			data, err := json.Marshal(ev)
			if err != nil {
				s.log.Warn("encode event", "err", err)
				continue
			}
			seq++
			frame := fmt.Appendf(nil, "id: %d\nevent: %s\ndata: %s\n\n", seq, ev.Type, data)
			if err := write(frame); err != nil {
				return nil
			}
		}
	}
}
