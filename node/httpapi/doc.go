// Package httpapi is the daemon's HTTP API server: routing, bearer-token
// authentication, JSON decoding with limits, error mapping, the job upload,
// result download, the server-sent event stream, /metrics and the OpenAPI
// document. What it serves comes from a Backend, which the node implements;
// the wire types live in node/api.
//
// # Contract
//
//   - Every request needs "Authorization: Bearer <token>" (compared in
//     constant time); without it: 401 and a JSON error. /metrics and
//     /v1/openapi.yaml need it too. The one other credential is the
//     dashboard's session cookie (node/ui): /ui/login exchanges a one-time
//     code, minted from the token by 'bourse ui', for an HttpOnly
//     SameSite=Strict cookie, which authorizes GET and HEAD of /v1/ only
//     (never a call that changes anything) and the pages under /ui/.
//   - Errors are {"error": {"code", "message"}}; Backend errors wrapping
//     api.ErrNotFound, ErrBadRequest, ErrConflict, ErrUnavailable map to
//     404, 400, 409, 503, anything else to 500. Unknown paths are 404 and
//     known paths with the wrong method 405, both as JSON.
//   - JSON bodies: at most Options.MaxJSON (1 MiB) or 413; exactly one JSON
//     value, unknown fields rejected, garbage gets a 400 that says where.
//   - POST /v1/jobs is multipart/form-data with a "spec" part (JSON) and a
//     "payload" part (at most Options.MaxUpload, else 413). The spec and the
//     payload are checked (api.ParseJobSpec, api.CheckPayload) before the
//     Backend sees anything, so a bad upload stores nothing.
//   - Short calls run under Options.RequestTimeout (504 "timeout" when the
//     backend is slower); uploads, downloads and /v1/events do not.
//   - A panic in a Backend call is recovered, logged and answered with 500.
//   - Serve answers HTTPS when Options.TLS is set; without it, it refuses a
//     listener that is not on loopback (ErrPlaintextOffLoopback).
//
// # Use
//
//	srv, err := httpapi.New(backend, token, httpapi.Options{
//		MaxUpload:  int64(cfg.API.MaxUploadMiB) << 20,
//		Gatherer:   registry, // served at /metrics
//		Registerer: registry, // API request metrics
//		Logger:     log,
//	})
//	ln, err := net.Listen("tcp", cfg.API.Listen)
//	err = srv.Serve(ctx, ln) // returns after ctx ends and a graceful shutdown
//
// A *Server is also an http.Handler (tests wrap it in httptest.Server).
// Serve owns its goroutines; Shutdown ends the event streams first, then
// waits for in-flight requests.
package httpapi
