package market

import (
	"slices"
	"strings"
)

// Bounds on the strings and lists an offer or bid may carry.
const (
	MaxPeerIDLen   = 128
	MaxRegionLen   = 64
	MaxLabels      = 32
	MaxLabelLen    = 128
	MaxRegions     = 16 // regions a bid allows, and regions in its nearness hint
	MaxArgs        = 64 // args, and env entries, of a job manifest
	MaxArgBytes    = 16 << 10
	MaxImageLen    = 256
	MaxPayloadSize = 1 << 30 // bytes
)

// isToken reports whether s is a non-empty run of [a-z0-9._-].
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// isPrintable reports whether s is non-empty printable ASCII without spaces.
func isPrintable(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// validLabel accepts key=value with a token key and a value of
// [A-Za-z0-9._-]* (possibly empty).
func validLabel(l string) bool {
	if len(l) > MaxLabelLen {
		return false
	}
	k, v, ok := strings.Cut(l, "=")
	if !ok || !isToken(k) {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// sortedUnique reports whether xs is strictly increasing, which is how
// sets of strings are carried so that one set has one encoding.
func sortedUnique(xs []string) bool {
	for i := 1; i < len(xs); i++ {
		if xs[i-1] >= xs[i] {
			return false
		}
	}
	return true
}

func validLabels(field string, ls []string) error {
	if len(ls) > MaxLabels {
		return invalid(CodeField, field, "%d labels exceed %d", len(ls), MaxLabels)
	}
	for _, l := range ls {
		if !validLabel(l) {
			return invalid(CodeField, field, "label %.40q is not key=value", l)
		}
	}
	if !sortedUnique(ls) {
		return invalid(CodeField, field, "labels must be sorted and unique")
	}
	return nil
}

func validRegion(field, r string) error {
	if len(r) > MaxRegionLen || !isToken(r) {
		return invalid(CodeField, field, "region %.40q is not [a-z0-9._-]{1,%d}", r, MaxRegionLen)
	}
	return nil
}

// hasAll reports whether the sorted set have contains every element of the
// sorted set want.
func hasAll(have, want []string) bool {
	i := 0
	for _, w := range want {
		for i < len(have) && have[i] < w {
			i++
		}
		if i == len(have) || have[i] != w {
			return false
		}
		i++
	}
	return true
}

// missing lists the elements of want that have lacks (both sorted).
func missing(have, want []string) []string {
	var out []string
	for _, w := range want {
		if _, ok := slices.BinarySearch(have, w); !ok {
			out = append(out, w)
		}
	}
	return out
}

// addMs adds d milliseconds to t, saturating instead of wrapping.
func addMs(t, d int64) int64 {
	if d > 0 && t > (1<<63-1)-d {
		return 1<<63 - 1
	}
	if d < 0 && t < (-1<<63)-d {
		return -1 << 63
	}
	return t + d
}
