package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/bourse-net/bourse/node/api"
)

// submitTxs is POST /v1/txs: transactions signed elsewhere.
func (s *Server) submitTxs(w http.ResponseWriter, r *http.Request) error {
	data, err := s.readBody(w, r, api.MaxSubmitTxsBody)
	if err != nil {
		return err
	}
	txs, commit, err := DecodeSubmitTxs(data)
	if err != nil {
		return err
	}
	res, err := s.b.SubmitTxs(r.Context(), txs, commit)
	if err != nil {
		return err
	}
	if len(res) != len(txs) {
		return errors.New("submit txs: the backend answered a different number of results")
	}
	return writeJSON(w, http.StatusOK, api.SubmitTxsResponse{Results: res})
}

// DecodeSubmitTxs decodes the body of POST /v1/txs (api.SubmitTxsRequest)
// as a stream, so that a body of many tiny elements is refused at the
// (api.MaxSubmitTxs+1)th instead of being held whole: garbage, unknown
// fields, duplicate fields, empty or non-base64 transactions and more than
// api.MaxSubmitTxs transactions are errors matching api.ErrBadRequest.
func DecodeSubmitTxs(data []byte) (txs [][]byte, commit bool, err error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, false, api.BadRequest("empty request body: send a JSON object with txs")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	bad := func(format string, args ...any) ([][]byte, bool, error) {
		return nil, false, api.BadRequest("POST /v1/txs: "+format, args...)
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return bad("want a JSON object with txs")
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return bad("invalid JSON: %v", err)
		}
		key, _ := t.(string)
		if seen[key] {
			return bad("field %q given twice", key)
		}
		seen[key] = true
		switch key {
		case "commit":
			if err := dec.Decode(&commit); err != nil {
				return bad("field \"commit\": want true or false")
			}
		case "txs":
			if t, err := dec.Token(); err != nil || t != json.Delim('[') {
				return bad("field \"txs\": want an array of base64 strings")
			}
			for dec.More() {
				if len(txs) == api.MaxSubmitTxs {
					return bad("more than %d transactions in one request: split them", api.MaxSubmitTxs)
				}
				var s string
				if err := dec.Decode(&s); err != nil {
					return bad("txs[%d]: want a base64 string", len(txs))
				}
				raw, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					return bad("txs[%d]: not base64: %v", len(txs), err)
				}
				if len(raw) == 0 {
					return bad("txs[%d]: empty", len(txs))
				}
				txs = append(txs, raw)
			}
			if _, err := dec.Token(); err != nil {
				return bad("invalid JSON: %v", err)
			}
		default:
			return bad("unknown field %q (want txs and commit)", key)
		}
	}
	if _, err := dec.Token(); err != nil {
		return bad("invalid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("trailing data after the JSON object")
	}
	if len(txs) == 0 {
		return bad("no transactions: txs must hold 1 to %d", api.MaxSubmitTxs)
	}
	return txs, commit, nil
}
