// Package codec is the one canonical encoding of Bourse: everything that is
// signed or hashed (transactions, blocks, votes, offers, bids, results) is
// encoded with CBOR Core Deterministic Encoding (RFC 8949 §4.2.1) through
// this package, so the same value yields the same bytes on every machine.
//
// Decoding is for untrusted input and always runs with explicit limits: a
// maximum input size, maximum nesting, maximum array and map lengths; no
// indefinite lengths, no tags, no duplicate map keys, no unknown fields.
//
// May import: the standard library and github.com/fxamacker/cbor/v2 only.
// Every other Bourse package may import codec.
package codec
