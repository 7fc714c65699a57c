package codec

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// Limits bound what a decoder accepts. The zero value is not useful; start
// from DefaultLimits.
type Limits struct {
	MaxSize          int // bytes of encoded input
	MaxNesting       int // arrays, maps and tags nested (4..65535)
	MaxArrayElements int // elements of one array (16..)
	MaxMapPairs      int // pairs of one map (16..)
}

// DefaultLimits fit every message Bourse sends on the wire: 4 MiB, 16 levels
// of nesting, 65,536 array elements, 1,024 map pairs.
var DefaultLimits = Limits{MaxSize: 4 << 20, MaxNesting: 16, MaxArrayElements: 1 << 16, MaxMapPairs: 1024}

// ErrTooLarge is returned when the input exceeds Limits.MaxSize.
var ErrTooLarge = errors.New("codec: input exceeds size limit")

// ErrNotCanonical is returned by UnmarshalCanonical for input that decodes
// but is not the canonical encoding of what it decodes to.
var ErrNotCanonical = errors.New("codec: input is not canonically encoded")

var encMode cbor.EncMode

func init() {
	opts := cbor.CoreDetEncOptions()
	opts.Time = cbor.TimeUnix // times are not used on the wire; refuse ambiguity
	var err error
	encMode, err = opts.EncMode()
	if err != nil {
		panic(err) // static options: a broken build, not bad input
	}
}

// Marshal returns the canonical CBOR encoding of v.
func Marshal(v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("codec: marshal %T: %w", v, err)
	}
	return b, nil
}

// MustMarshal is Marshal for values whose types are known to encode (plain
// structs of integers, strings and byte slices). It panics only on a
// programming error.
func MustMarshal(v any) []byte {
	b, err := Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Hash is the sha256 of v's canonical encoding.
func Hash(v any) ([32]byte, error) {
	b, err := Marshal(v)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// Decoder decodes untrusted input under fixed limits. It is safe for
// concurrent use.
type Decoder struct {
	limits Limits
	mode   cbor.DecMode
}

// NewDecoder builds a decoder for the given limits.
func NewDecoder(l Limits) (*Decoder, error) {
	if l.MaxSize <= 0 {
		return nil, fmt.Errorf("codec: MaxSize must be positive, got %d", l.MaxSize)
	}
	mode, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   l.MaxNesting,
		MaxArrayElements:  l.MaxArrayElements,
		MaxMapPairs:       l.MaxMapPairs,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
		IntDec:            cbor.IntDecConvertNone,
		MapKeyByteString:  cbor.MapKeyByteStringForbidden,
		DefaultMapType:    reflect.TypeOf(map[string]any(nil)),
	}.DecMode()
	if err != nil {
		return nil, fmt.Errorf("codec: decoder limits: %w", err)
	}
	return &Decoder{limits: l, mode: mode}, nil
}

// MustDecoder is NewDecoder for limits fixed at compile time (a package's
// decoder variables); it panics on limits NewDecoder refuses, which is a
// broken build, not bad input.
func MustDecoder(l Limits) *Decoder {
	d, err := NewDecoder(l)
	if err != nil {
		panic(err)
	}
	return d
}

var defaultDecoder = MustDecoder(DefaultLimits)

// Unmarshal decodes data into v. Trailing bytes are an error.
func (d *Decoder) Unmarshal(data []byte, v any) error {
	if len(data) > d.limits.MaxSize {
		return fmt.Errorf("%w: %d > %d bytes", ErrTooLarge, len(data), d.limits.MaxSize)
	}
	if err := d.mode.Unmarshal(data, v); err != nil {
		return fmt.Errorf("codec: unmarshal %T: %w", v, err)
	}
	return nil
}

// UnmarshalCanonical decodes data into v and fails unless data is exactly the
// canonical encoding of the decoded value. Use it where the bytes themselves
// are hashed or identify the value, so that one value has one identity.
func (d *Decoder) UnmarshalCanonical(data []byte, v any) error {
	if err := d.Unmarshal(data, v); err != nil {
		return err
	}
	again, err := Marshal(v)
	if err != nil {
		return err
	}
	if !bytes.Equal(again, data) {
		return ErrNotCanonical
	}
	return nil
}

// Unmarshal decodes data into v under DefaultLimits.
func Unmarshal(data []byte, v any) error { return defaultDecoder.Unmarshal(data, v) }

// UnmarshalCanonical is Decoder.UnmarshalCanonical under DefaultLimits.
func UnmarshalCanonical(data []byte, v any) error {
	return defaultDecoder.UnmarshalCanonical(data, v)
}
