package wasmfile

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func mkmod(secs ...[]byte) []byte {
	b := slices.Clone(header)
	for _, s := range secs {
		b = append(b, s[0])
		b = appendLEB(b, uint64(len(s)-1))
		b = append(b, s[1:]...)
	}
	return b
}

var (
	typ   = []byte{1, 1, 0x60, 0, 0}
	fn    = []byte{3, 1, 0}
	start = []byte{7, 1, 6, '_', 's', 't', 'a', 'r', 't', 0, 0}
	code  = []byte{10, 1, 2, 0, 0x0b}
)

// TestPrepareBoundsTablesWithoutMaximum: table.grow is bounded only by a
// table's declared maximum, so a table that declares none gets its
// minimum; one that declares a maximum is left alone, and so is the rest
// of the module.
func TestPrepareBoundsTablesWithoutMaximum(t *testing.T) {
	custom := []byte{0, 1, 'x', 9, 9}
	in := mkmod(typ, fn, []byte{4, 2, 0x70, 0, 0x80, 0x01, 0x6f, 1, 1, 2}, start, custom, code)
	out, err := Prepare(in, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := mkmod(typ, fn, []byte{4, 2, 0x70, 1, 0x80, 0x01, 0x80, 0x01, 0x6f, 1, 1, 2}, start, custom, code)
	if !bytes.Equal(out, want) {
		t.Fatalf("got  %x\nwant %x", out, want)
	}
	if err := Check(out, Limits{}); err != nil {
		t.Fatal(err)
	}
	bounded := mkmod(typ, fn, []byte{4, 1, 0x70, 1, 1, 2}, start, code)
	if out, err := Prepare(bounded, Limits{}); err != nil || !bytes.Equal(out, bounded) {
		t.Fatalf("a bounded table was rewritten: %v", err)
	}
}

// TestLimitsAreEnforcedAtTheBound: memory and tables exactly at the limit
// pass; one page or entry more is ErrTooLarge.
func TestLimitsAreEnforcedAtTheBound(t *testing.T) {
	lim := ForMemory(2 * PageSize) // 2 pages, 16 Ki table entries
	if lim.TableEntries != 2*PageSize/TableEntryBytes {
		t.Fatalf("table entries %d", lim.TableEntries)
	}
	cases := []struct {
		name string
		sec  []byte
		ok   bool
	}{
		{"memory at the bound", []byte{5, 1, 0, 2}, true},
		{"memory a page over", []byte{5, 1, 0, 3}, false},
		{"table at the bound", []byte{4, 1, 0x70, 0, 0x80, 0x80, 0x01}, true},
		{"table an entry over", []byte{4, 1, 0x70, 0, 0x81, 0x80, 0x01}, false},
		{"two tables over together", []byte{4, 2, 0x70, 0, 0x80, 0x40, 0x70, 1, 0, 0x81, 0x40}, false},
	}
	for _, c := range cases {
		err := Check(mkmod(typ, fn, c.sec, start, code), lim)
		if c.ok != (err == nil) || (!c.ok && !errors.Is(err, ErrTooLarge)) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// FuzzPrepare: any bytes give a module or an error, never a panic; a
// prepared module passes Check and preparing it again changes nothing.
func FuzzPrepare(f *testing.F) {
	f.Add(mkmod(typ, fn, []byte{4, 1, 0x70, 0, 5}, start, code))
	f.Add(mkmod(typ, fn, []byte{5, 1, 0, 2}, start, code))
	f.Add(mkmod(typ, []byte{2, 1, 1, 'a', 1, 'b', 0, 0}, fn, start, code))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := Prepare(b, Limits{})
		if err != nil {
			return
		}
		if err := Check(out, Limits{}); err != nil {
			t.Fatalf("prepared module fails Check: %v", err)
		}
		again, err := Prepare(out, Limits{})
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("Prepare is not idempotent: %v", err)
		}
	})
}
