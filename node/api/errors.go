package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors a Backend returns (wrapped with context) and the server
// maps to HTTP statuses. A Client returns *Error, which matches these with
// errors.Is by its code.
var (
	// ErrNotFound: the block, transaction, account, job or offer does not
	// exist. 404, code "not_found".
	ErrNotFound = errors.New("not found")
	// ErrBadRequest: the request is malformed or asks for something
	// impossible. 400, code "bad_request". Wrap it with BadRequest to say why.
	ErrBadRequest = errors.New("bad request")
	// ErrUnavailable: the node does not have the role the request needs
	// (not a provider, not a validator) or is not ready yet. 503, code
	// "unavailable".
	ErrUnavailable = errors.New("unavailable")
	// ErrConflict: the request contradicts the current state (cancel a
	// matched job, register twice). 409, code "conflict".
	ErrConflict = errors.New("conflict")
)

// Error codes carried in {"error": {"code": ...}}.
const (
	CodeBadRequest       = "bad_request"
	CodeUnauthorized     = "unauthorized"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeConflict         = "conflict"
	CodeTooLarge         = "too_large"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeInternal         = "internal"
	CodeUnavailable      = "unavailable"
	CodeTimeout          = "timeout"
)

// badRequest carries the reason of a 400 and matches ErrBadRequest.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }
func (e *badRequest) Is(t error) bool {
	return t == ErrBadRequest
}

// BadRequest returns an error matching ErrBadRequest whose message is only
// the formatted reason (without a "bad request" prefix).
func BadRequest(format string, args ...any) error {
	return &badRequest{msg: fmt.Sprintf(format, args...)}
}

// Error is an error returned by the API: the HTTP status and the JSON
// error body {"error": {"code": "...", "message": "..."}}.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("daemon API: %s (HTTP %d)", e.Code, e.Status)
	}
	return e.Message
}

// Is lets errors.Is(err, api.ErrNotFound) and friends work on errors
// decoded from a response.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == CodeNotFound
	case ErrBadRequest:
		return e.Code == CodeBadRequest
	case ErrUnavailable:
		return e.Code == CodeUnavailable
	case ErrConflict:
		return e.Code == CodeConflict
	}
	return false
}

// ErrorBody is the JSON envelope of every error response.
type ErrorBody struct {
	Error Error `json:"error"`
}

// StatusOf maps an error to its HTTP status and code: the sentinels above,
// an *Error as it is, everything else 500 "internal".
func StatusOf(err error) (int, string) {
	var ae *Error
	switch {
	case errors.As(err, &ae) && ae.Status != 0:
		return ae.Status, ae.Code
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, CodeNotFound
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, CodeBadRequest
	case errors.Is(err, ErrConflict):
		return http.StatusConflict, CodeConflict
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, CodeUnavailable
	}
	return http.StatusInternalServerError, CodeInternal
}

// UnreachableError says the daemon's API could not be reached at all.
type UnreachableError struct {
	Addr string // host:port tried
	Home string // the node home, for the hint; "" gives a placeholder
	Err  error
}

func (e *UnreachableError) Error() string {
	home := e.Home
	if home == "" {
		home = "DIR"
	}
	return fmt.Sprintf("cannot reach the daemon at %s: is `bourse daemon` running? (start it with `bourse daemon --home %s`)", e.Addr, home)
}

func (e *UnreachableError) Unwrap() error { return e.Err }
