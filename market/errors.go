package market

import (
	"errors"
	"fmt"
)

// Code names why something was refused: an offer or bid at validation, an
// offer in Explain, a Match in CheckMatch. Codes are short, stable strings
// meant for metrics labels, JSON output and branching in callers.
type Code string

// Codes shared by Validate, Explain and CheckMatch.
const (
	CodeDecode     Code = "decode"     // bytes did not decode (size, shape, not canonical)
	CodeSignature  Code = "signature"  // signature or chain id wrong
	CodeField      Code = "field"      // a malformed field (string shape, length, ordering)
	CodeResources  Code = "resources"  // absurd resources, or they do not fit
	CodePrice      Code = "price"      // overflowing terms, or price above the bid's max
	CodeExpiry     Code = "expiry"     // expiry in the past or too far ahead
	CodeExpired    Code = "expired"    // expired at the time considered
	CodeExecutor   Code = "executor"   // unknown executor, or not supported by the offer
	CodePayload    Code = "payload"    // payload reference malformed
	CodeRegion     Code = "region"     // offer region not allowed by the bid
	CodeLabel      Code = "label"      // offer lacks a label the bid requires
	CodeReputation Code = "reputation" // provider reputation below the bid's minimum
	CodeCollateral Code = "collateral" // provider not registered or under minimum collateral
	CodeBalance    Code = "balance"    // client cannot cover the bid's max price
	CodeBidUsed    Code = "bid-used"   // bid already matched or cancelled on chain
	CodeMismatch   Code = "mismatch"   // a Match field disagrees with what its offer and bid imply
	CodeSelfMatch  Code = "self-match" // the bid's client is the offer's provider
	CodeSuperseded Code = "superseded" // the chain committed a Match on a newer offer of the provider
	CodeReplica    Code = "replica"    // the provider already runs another replica of the bid's job
)

// ErrOverflow is wrapped by every arithmetic error on amounts or resources.
var ErrOverflow = errors.New("arithmetic overflow")

// InvalidError is returned by Validate, Verify and the Decode functions:
// the input is bad and whoever sent it should be penalised. Code is the
// reason counted in metrics; Field names the offending field.
type InvalidError struct {
	Code   Code
	Field  string
	Detail string
	Err    error // optional cause
}

func (e *InvalidError) Error() string {
	s := "invalid " + string(e.Code)
	if e.Field != "" {
		s += " (" + e.Field + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *InvalidError) Unwrap() error { return e.Err }

func invalid(code Code, field, format string, args ...any) *InvalidError {
	return &InvalidError{Code: code, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// CodeOf returns the Code carried by err (an *InvalidError or *MatchError
// anywhere in its chain), or "" if it carries none.
func CodeOf(err error) Code {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Code
	}
	var me *MatchError
	if errors.As(err, &me) {
		return me.Code
	}
	return ""
}
