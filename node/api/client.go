package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Limits on what a Client reads back.
const (
	maxResponseJSON = 32 << 20
	maxEventSize    = 4 << 20
)

// Headers of the result download.
const (
	HeaderResultHash = "Bourse-Result-Hash" // hex sha256 of the body
)

// ErrResultCorrupt is returned by the reader of JobResult when the
// downloaded bytes do not hash to the announced result hash.
var ErrResultCorrupt = errors.New("result does not match its hash")

// Client calls the daemon's HTTP API. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
	// Home is the node home, only used to make the "cannot reach the
	// daemon" hint exact.
	Home string
}

// NewClient returns a client for the API at baseURL ("127.0.0.1:7700",
// "http://127.0.0.1:7700" or "https://node1.example.org:7700") that sends
// token as its bearer token. Plain HTTP is refused (ErrPlaintextToken)
// unless the host is loopback; for https pass PinnedHTTPClient. A nil
// httpClient means a client without an overall timeout (downloads and the
// event stream may be long); use contexts to bound calls.
func NewClient(baseURL, token string, httpClient *http.Client) (*Client, error) {
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL
	}
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("api address %q: want host:port or http://host:port", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	if u.Scheme == "http" && token != "" && !IsLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("api address %s: %w: use https:// with the node's certificate fingerprint", u.Host, ErrPlaintextToken)
	}
	if httpClient == nil {
		httpClient = &http.Client{}
	}
	return &Client{base: u, token: token, hc: httpClient}, nil
}

// Addr is the host:port the client talks to.
func (c *Client) Addr() string { return c.base.Host }

// BaseURL is the API's base URL, scheme included.
func (c *Client) BaseURL() string { return c.base.String() }

// Token is the bearer token the client sends (the dashboard's login codes
// are derived from it, so that the token never goes in a link).
func (c *Client) Token() string { return c.token }

func (c *Client) url(path string, q url.Values) string {
	u := *c.base
	u.Path += path
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// do sends a request and returns the response when it is 2xx; otherwise the
// decoded *Error.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" && ctx.Err() == nil {
			return nil, &UnreachableError{Addr: c.base.Host, Home: c.Home, Err: err}
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeError(resp)
}

func decodeError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb ErrorBody
	if err := json.Unmarshal(data, &eb); err != nil || eb.Error.Code == "" {
		msg := strings.TrimSpace(string(data))
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return &Error{Status: resp.StatusCode, Code: codeForStatus(resp.StatusCode),
			Message: fmt.Sprintf("daemon API answered %s: %s", resp.Status, msg)}
	}
	eb.Error.Status = resp.StatusCode
	return &eb.Error
}

func codeForStatus(s int) string {
	switch s {
	case http.StatusBadRequest:
		return CodeBadRequest
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusConflict:
		return CodeConflict
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusServiceUnavailable:
		return CodeUnavailable
	}
	return CodeInternal
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, out any) error {
	resp, err := c.do(ctx, http.MethodGet, path, q, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeBody(resp, path, out)
}

func (c *Client) postJSON(ctx context.Context, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("POST %s: encode request: %w", path, err)
		}
		body = bytes.NewReader(data)
	}
	resp, err := c.do(ctx, http.MethodPost, path, nil, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeBody(resp, path, out)
}

func decodeBody(resp *http.Response, path string, out any) error {
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseJSON)).Decode(out); err != nil {
		return fmt.Errorf("decode response of %s: %w", path, err)
	}
	return nil
}

// Status is GET /v1/status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.getJSON(ctx, "/v1/status", nil, &s)
}

// Block is GET /v1/chain/blocks/{height}.
func (c *Client) Block(ctx context.Context, height uint64) (Block, error) {
	var b Block
	return b, c.getJSON(ctx, "/v1/chain/blocks/"+strconv.FormatUint(height, 10), nil, &b)
}

// LatestBlock is GET /v1/chain/blocks/latest.
func (c *Client) LatestBlock(ctx context.Context) (Block, error) {
	var b Block
	return b, c.getJSON(ctx, "/v1/chain/blocks/latest", nil, &b)
}

// Tx is GET /v1/chain/txs/{hash}.
func (c *Client) Tx(ctx context.Context, hash string) (Tx, error) {
	var t Tx
	return t, c.getJSON(ctx, "/v1/chain/txs/"+url.PathEscape(hash), nil, &t)
}

// Validators is GET /v1/chain/validators.
func (c *Client) Validators(ctx context.Context) ([]Validator, error) {
	var v []Validator
	return v, c.getJSON(ctx, "/v1/chain/validators", nil, &v)
}

// Account is GET /v1/accounts/{addr}.
func (c *Client) Account(ctx context.Context, addr string) (Account, error) {
	var a Account
	return a, c.getJSON(ctx, "/v1/accounts/"+url.PathEscape(addr), nil, &a)
}

// Offers is GET /v1/market/offers.
func (c *Client) Offers(ctx context.Context) ([]Offer, error) {
	var v []Offer
	return v, c.getJSON(ctx, "/v1/market/offers", nil, &v)
}

// Bids is GET /v1/market/bids.
func (c *Client) Bids(ctx context.Context) ([]Bid, error) {
	var v []Bid
	return v, c.getJSON(ctx, "/v1/market/bids", nil, &v)
}

func (f MatchFilter) query() url.Values {
	q := url.Values{}
	if f.FromHeight > 0 {
		q.Set("from", strconv.FormatUint(f.FromHeight, 10))
	}
	if f.ToHeight > 0 {
		q.Set("to", strconv.FormatUint(f.ToHeight, 10))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// Matches is GET /v1/market/matches?from=&to=&limit=.
func (c *Client) Matches(ctx context.Context, f MatchFilter) ([]Match, error) {
	var v []Match
	return v, c.getJSON(ctx, "/v1/market/matches", f.query(), &v)
}

// Match is GET /v1/market/matches/{id}.
func (c *Client) Match(ctx context.Context, id string) (Match, error) {
	var v Match
	return v, c.getJSON(ctx, "/v1/market/matches/"+url.PathEscape(id), nil, &v)
}

// MarketStats is GET /v1/market/stats?from=&to= (0: unbounded).
func (c *Client) MarketStats(ctx context.Context, from, to uint64) (MarketStats, error) {
	var v MarketStats
	return v, c.getJSON(ctx, "/v1/market/stats", MatchFilter{FromHeight: from, ToHeight: to}.query(), &v)
}

// SubmitJob is POST /v1/jobs: a multipart/form-data upload with a "spec"
// part (the JSON spec) and, unless payload is nil (a docker job naming an
// image the provider has), a "payload" part streamed from payload (for
// docker, an image tarball).
func (c *Client) SubmitJob(ctx context.Context, spec JobSpec, payload io.Reader) (Job, error) {
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return Job{}, fmt.Errorf("submit job: encode spec: %w", err)
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	// The writer goroutine ends when the pipe is fully written or the
	// request closes the reader (transport error, early response).
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(writeSubmit(mw, specJSON, payload))
	}()
	resp, err := c.do(ctx, http.MethodPost, "/v1/jobs", nil, pr, mw.FormDataContentType())
	pr.CloseWithError(errors.New("request finished"))
	<-done
	if err != nil {
		return Job{}, err
	}
	defer resp.Body.Close()
	var j Job
	return j, decodeBody(resp, "/v1/jobs", &j)
}

// hashFirstAbove is the payload size from which SubmitJobBytes first
// offers the payload by hash.
const hashFirstAbove = 64 << 10

// SubmitJobBytes submits a job whose payload is in memory. A large payload
// is first offered by its sha256 (spec.PayloadSHA256): a daemon that holds
// it from an earlier job takes the job without the upload; one that does
// not answers not found, and the payload is uploaded.
func (c *Client) SubmitJobBytes(ctx context.Context, spec JobSpec, payload []byte) (Job, error) {
	if len(payload) <= hashFirstAbove {
		var r io.Reader
		if payload != nil {
			r = bytes.NewReader(payload)
		}
		return c.SubmitJob(ctx, spec, r)
	}
	sum := sha256.Sum256(payload)
	spec.PayloadSHA256 = hex.EncodeToString(sum[:])
	j, err := c.SubmitJob(ctx, spec, nil)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return j, err
	}
	return c.SubmitJob(ctx, spec, bytes.NewReader(payload))
}

func writeSubmit(mw *multipart.Writer, spec []byte, payload io.Reader) error {
	fw, err := mw.CreateFormField("spec")
	if err != nil {
		return err
	}
	if _, err := fw.Write(spec); err != nil {
		return err
	}
	if payload != nil {
		pw, err := mw.CreateFormFile("payload", "payload")
		if err != nil {
			return err
		}
		if _, err := io.Copy(pw, payload); err != nil {
			return fmt.Errorf("upload payload: %w", err)
		}
	}
	return mw.Close()
}

// DryRun is POST /v1/jobs/dry-run with the JSON spec.
func (c *Client) DryRun(ctx context.Context, spec JobSpec) (DryRun, error) {
	var v DryRun
	return v, c.postJSON(ctx, "/v1/jobs/dry-run", spec, &v)
}

// Jobs is GET /v1/jobs?state=&limit=.
func (c *Client) Jobs(ctx context.Context, f JobFilter) ([]Job, error) {
	q := url.Values{}
	if f.State != "" {
		q.Set("state", f.State)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var v []Job
	return v, c.getJSON(ctx, "/v1/jobs", q, &v)
}

// Job is GET /v1/jobs/{id}.
func (c *Client) Job(ctx context.Context, id string) (Job, error) {
	var v Job
	return v, c.getJSON(ctx, "/v1/jobs/"+url.PathEscape(id), nil, &v)
}

// JobLogs is GET /v1/jobs/{id}/logs.
func (c *Client) JobLogs(ctx context.Context, id string) (JobLogs, error) {
	var v JobLogs
	return v, c.getJSON(ctx, "/v1/jobs/"+url.PathEscape(id)+"/logs", nil, &v)
}

// ChallengeJob is POST /v1/jobs/{id}/challenge: kind "unavailable" or
// "wrong". It returns once the challenge committed or was refused.
func (c *Client) ChallengeJob(ctx context.Context, id, kind string) (Challenge, error) {
	var v Challenge
	return v, c.postJSON(ctx, "/v1/jobs/"+url.PathEscape(id)+"/challenge", ChallengeRequest{Kind: kind}, &v)
}

// VerifyJob is POST /v1/jobs/{id}/verify: the node re-runs the settled
// WASM job and compares result hashes. It takes as long as the job.
func (c *Client) VerifyJob(ctx context.Context, id string) (Verification, error) {
	var v Verification
	return v, c.postJSON(ctx, "/v1/jobs/"+url.PathEscape(id)+"/verify", nil, &v)
}

// CancelJob is POST /v1/jobs/{id}/cancel.
func (c *Client) CancelJob(ctx context.Context, id string) (Job, error) {
	var v Job
	return v, c.postJSON(ctx, "/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, &v)
}

// JobResult is GET /v1/jobs/{id}/result. The caller closes the reader. It
// verifies the bytes as they are read: at the end it returns
// ErrResultCorrupt if they do not hash to info.Hash or are not info.Size
// long.
func (c *Client) JobResult(ctx context.Context, id string) (io.ReadCloser, ResultInfo, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id)+"/result", nil, nil, "")
	if err != nil {
		return nil, ResultInfo{}, err
	}
	info := ResultInfo{Size: resp.ContentLength, Hash: resp.Header.Get(HeaderResultHash)}
	want, err := hex.DecodeString(info.Hash)
	if err != nil || len(want) != sha256.Size {
		resp.Body.Close()
		return nil, info, fmt.Errorf("job %s result: the daemon sent no valid %s header", id, HeaderResultHash)
	}
	return &verifyingReader{r: resp.Body, h: sha256.New(), want: want, size: info.Size}, info, nil
}

type verifyingReader struct {
	r    io.ReadCloser
	h    hash.Hash
	want []byte
	size int64
	n    int64
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if errors.Is(err, io.EOF) {
		if (v.size >= 0 && v.n != v.size) || !bytes.Equal(v.h.Sum(nil), v.want) {
			return n, fmt.Errorf("%w: got %d bytes hashing to %x, want %s", ErrResultCorrupt, v.n, v.h.Sum(nil), hex.EncodeToString(v.want))
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.r.Close() }

// Send is POST /v1/wallet/send.
func (c *Client) Send(ctx context.Context, to string, amount uint64) (TxResult, error) {
	var v TxResult
	return v, c.postJSON(ctx, "/v1/wallet/send", SendRequest{To: to, Amount: amount}, &v)
}

// SubmitTxs is POST /v1/txs: it hands transactions signed elsewhere
// (chain.Tx's Encode after Sign) to the node, which checks them, admits
// them to its mempool and gossips them. Without commit it returns once
// they are admitted (like CometBFT's broadcast_tx_sync); with commit it
// waits for their blocks (about 10 s at most). One result per transaction,
// in order: a transaction the node refused has status TxRejected and the
// reason in Error, and does not fail the call. Resubmitting the same
// bytes is safe: a transaction takes effect at most once.
func (c *Client) SubmitTxs(ctx context.Context, txs [][]byte, commit bool) ([]TxResult, error) {
	var v SubmitTxsResponse
	if err := c.postJSON(ctx, "/v1/txs", SubmitTxsRequest{Txs: txs, Commit: commit}, &v); err != nil {
		return nil, err
	}
	if len(v.Results) != len(txs) {
		return nil, fmt.Errorf("POST /v1/txs: %d results for %d transactions", len(v.Results), len(txs))
	}
	return v.Results, nil
}

// ProviderStatus is GET /v1/provider.
func (c *Client) ProviderStatus(ctx context.Context) (ProviderStatus, error) {
	var v ProviderStatus
	return v, c.getJSON(ctx, "/v1/provider", nil, &v)
}

// ProviderRegister is POST /v1/provider/register.
func (c *Client) ProviderRegister(ctx context.Context, collateral uint64) (TxResult, error) {
	var v TxResult
	return v, c.postJSON(ctx, "/v1/provider/register", RegisterRequest{Collateral: collateral}, &v)
}

// ProviderDeregister is POST /v1/provider/deregister.
func (c *Client) ProviderDeregister(ctx context.Context) (TxResult, error) {
	var v TxResult
	return v, c.postJSON(ctx, "/v1/provider/deregister", struct{}{}, &v)
}

// ProviderWithdraw is POST /v1/provider/withdraw.
func (c *Client) ProviderWithdraw(ctx context.Context) (TxResult, error) {
	var v TxResult
	return v, c.postJSON(ctx, "/v1/provider/withdraw", struct{}{}, &v)
}

// Bond is POST /v1/stake/bond.
func (c *Client) Bond(ctx context.Context, amount uint64) (TxResult, error) {
	var v TxResult
	return v, c.postJSON(ctx, "/v1/stake/bond", AmountRequest{Amount: amount}, &v)
}

// Unbond is POST /v1/stake/unbond.
func (c *Client) Unbond(ctx context.Context, amount uint64) (TxResult, error) {
	var v TxResult
	return v, c.postJSON(ctx, "/v1/stake/unbond", AmountRequest{Amount: amount}, &v)
}

// OpenAPI is GET /v1/openapi.yaml.
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/openapi.yaml", nil, nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, maxResponseJSON))
}

// Events opens GET /v1/events, the server-sent event stream. Read it with
// Next; Close (or cancelling ctx) ends it.
func (c *Client) Events(ctx context.Context) (*EventStream, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/events", nil, nil, "")
	if err != nil {
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		return nil, fmt.Errorf("open event stream: content type %q is not text/event-stream", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventSize)
	return &EventStream{body: resp.Body, sc: sc}, nil
}

// EventStream reads server-sent events. It is not safe for concurrent use.
type EventStream struct {
	body io.ReadCloser
	sc   *bufio.Scanner
}

// Next blocks until the next event and returns it. It returns io.EOF when
// the server ends the stream.
func (s *EventStream) Next() (Event, error) {
	var data []byte
	for s.sc.Scan() {
		line := s.sc.Bytes()
		switch {
		case len(line) == 0:
			if data == nil {
				continue
			}
			var ev Event
			if err := json.Unmarshal(data, &ev); err != nil {
				return Event{}, fmt.Errorf("decode event: %w", err)
			}
			return ev, nil
		case line[0] == ':': // comment, keep-alive
		case bytes.HasPrefix(line, []byte("data:")):
			d := bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, d...)
		}
	}
	if err := s.sc.Err(); err != nil {
		return Event{}, fmt.Errorf("read event stream: %w", err)
	}
	return Event{}, io.EOF
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }
