// Package wasmfile checks a WebAssembly module's structure and declared
// resource limits without compiling it, and prepares it for a provider's
// runtime. It has no dependencies, so the API (submit time) and the WASM
// executor (run time: a hand-built bid skips the API) apply the same
// rules.
//
// Rules beyond the binary format's structure:
//
//   - imports come only from WASI preview 1, and only functions: WASI
//     provides no table, memory, global or tag;
//   - at most one linear memory, 32-bit, not shared, whose initial size
//     fits Limits.MemoryBytes (growth past the job's limit is refused by
//     the executor while it runs);
//   - tables: their entries cost the provider TableEntryBytes of host
//     memory each, outside linear memory. Every table's declared maximum
//     (its minimum when it declares none) counts, and the sum must fit
//     Limits.TableEntries. Prepare gives a table without a maximum a
//     maximum equal to its minimum, so table.grow, which is bounded only
//     by the declared maximum, cannot grow it (Go's compiler declares a
//     table without a maximum and never grows it);
//   - a `_start` function export: a WASI command.
package wasmfile

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

// WASIModule is the only import module a provider's WASM executor offers.
const WASIModule = "wasi_snapshot_preview1"

// TableEntryBytes is what one table entry costs the host (wazero keeps a
// uintptr per entry).
const TableEntryBytes = 8

// DefaultTableEntries bounds a module's table entries when Limits does
// not: 1 Mi entries, 8 MiB of host memory.
const DefaultTableEntries = 1 << 20

// PageSize is a linear memory page.
const PageSize = 1 << 16

// maxPages is wasm32's largest memory: 4 GiB.
const maxPages = 1 << 16

// ErrTooLarge is wrapped by the errors of a module whose memory or tables
// do not fit the limits.
var ErrTooLarge = errors.New("declares more than allowed")

// Limits are the bounds a module's declarations must fit. Zero fields
// mean the largest a wasm32 memory can be and DefaultTableEntries.
type Limits struct {
	MemoryBytes  uint64
	TableEntries uint64
}

func (l Limits) withDefaults() Limits {
	if l.MemoryBytes == 0 {
		l.MemoryBytes = maxPages * PageSize
	}
	if l.TableEntries == 0 {
		l.TableEntries = DefaultTableEntries
	}
	return l
}

// ForMemory returns the limits of a job allowed memBytes: its initial
// memory must fit, and its tables may use at most as much host memory as
// the job bought, and never more than DefaultTableEntries.
func ForMemory(memBytes uint64) Limits {
	return Limits{MemoryBytes: memBytes, TableEntries: min(memBytes/TableEntryBytes, DefaultTableEntries)}
}

// Check returns nil if b is a WASI command module whose declarations fit
// lim (see the package doc), else an error saying what is wrong.
func Check(b []byte, lim Limits) error {
	_, err := parse(b, lim.withDefaults())
	return err
}

// Prepare checks b as Check does and returns the module a provider runs:
// b itself, or a copy in which every table without a maximum gets its
// minimum as maximum.
func Prepare(b []byte, lim Limits) ([]byte, error) {
	m, err := parse(b, lim.withDefaults())
	if err != nil {
		return nil, err
	}
	if m.tableSec == nil || !m.unbounded {
		return b, nil
	}
	body := []byte{}
	body = appendLEB(body, uint64(len(m.tables)))
	for _, t := range m.tables {
		body = append(body, t.ref, 1)
		body = appendLEB(body, t.min)
		body = appendLEB(body, t.max)
	}
	out := slices.Clone(b[:m.tableSec[0]])
	out = append(out, secTable)
	out = appendLEB(out, uint64(len(body)))
	out = append(out, body...)
	out = append(out, b[m.tableSec[1]:]...)
	return out, nil
}

func appendLEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

var header = []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}

// Section ids in the order the binary format requires (tag, 13, sits
// between memory and global; data count, 12, before code).
const (
	secImport = 2
	secTable  = 4
	secMemory = 5
	secExport = 7
)

var sectionOrder = []byte{1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11}

type table struct {
	ref      byte
	min, max uint64
}

type module struct {
	tableSec  []int // start and end offsets of the whole table section
	tables    []table
	unbounded bool // a table declares no maximum
}

func parse(b []byte, lim Limits) (*module, error) {
	if !bytes.HasPrefix(b, header) {
		return nil, errors.New("not a WebAssembly binary module (no \\0asm version 1 header)")
	}
	m := &module{}
	r := &reader{b: b, off: len(header)}
	last := -1 // position in sectionOrder of the last non-custom section
	hasStart := false
	for r.off < len(r.b) {
		at := r.off
		id := r.byte()
		size := r.u32()
		if r.err != nil {
			return nil, fmt.Errorf("section header at byte %d: %w", at, r.err)
		}
		if uint64(size) > uint64(len(r.b)-r.off) {
			return nil, fmt.Errorf("section %d at byte %d: %d bytes, past the end of the module (%d bytes): truncated?", id, at, size, len(r.b))
		}
		body := &reader{b: r.b[:r.off+int(size)], off: r.off}
		r.off += int(size)
		if id == 0 { // custom: a name, then anything
			body.name()
			if body.err != nil {
				return nil, fmt.Errorf("custom section at byte %d: %w", at, body.err)
			}
			continue
		}
		pos := slices.Index(sectionOrder, id)
		if pos < 0 {
			return nil, fmt.Errorf("unknown section id %d at byte %d", id, at)
		}
		if pos <= last {
			return nil, fmt.Errorf("section %d at byte %d is out of order or repeated", id, at)
		}
		last = pos
		var err error
		switch id {
		case secImport:
			err = checkImports(body)
		case secTable:
			m.tableSec = []int{at, r.off}
			err = m.checkTables(body, lim)
		case secMemory:
			err = checkMemories(body, lim)
		case secExport:
			hasStart, err = checkExports(body)
		}
		if err != nil {
			return nil, err
		}
	}
	if !hasStart {
		return nil, errors.New("exports no _start function: a job must be a WASI command module (Go: GOOS=wasip1 GOARCH=wasm go build; Rust: --target wasm32-wasip1)")
	}
	return m, nil
}

func checkImports(r *reader) error {
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		mod, field := r.name(), r.name()
		if r.err != nil {
			break
		}
		if mod != WASIModule {
			return fmt.Errorf("imports %q.%q: providers offer only %s (was it built for a browser or another host?)", mod, field, WASIModule)
		}
		kind := r.byte()
		if r.err != nil {
			break
		}
		if kind != 0 {
			return fmt.Errorf("imports %q.%q of kind %d: %s provides only functions", mod, field, kind, WASIModule)
		}
		r.u32() // type index
	}
	if r.err != nil {
		return fmt.Errorf("import section: %w", r.err)
	}
	return r.end("import")
}

func (m *module) checkTables(r *reader, lim Limits) error {
	n := r.u32()
	var entries uint64
	for i := uint32(0); i < n && r.err == nil; i++ {
		ref := r.byte()
		if r.err != nil {
			break
		}
		if ref != 0x70 && ref != 0x6f {
			return fmt.Errorf("table %d: reference type 0x%x is not funcref or externref", i, ref)
		}
		flags := r.byte()
		t := table{ref: ref, min: uint64(r.u32())}
		switch flags {
		case 0:
			t.max = t.min
			m.unbounded = true
		case 1:
			t.max = uint64(r.u32())
			if r.err == nil && t.max < t.min {
				return fmt.Errorf("table %d: maximum %d below its minimum %d", i, t.max, t.min)
			}
		default:
			if r.err == nil {
				return fmt.Errorf("table %d: limits flags 0x%x (only 32-bit tables, with or without a maximum)", i, flags)
			}
		}
		m.tables = append(m.tables, t)
		entries += t.max
		if entries > lim.TableEntries {
			return fmt.Errorf("%w: tables may hold %d entries (%d MiB of provider memory at %d bytes each), more than the %d allowed", ErrTooLarge, entries, entries*TableEntryBytes>>20, TableEntryBytes, lim.TableEntries)
		}
	}
	if r.err != nil {
		return fmt.Errorf("table section: %w", r.err)
	}
	return r.end("table")
}

func checkMemories(r *reader, lim Limits) error {
	n := r.u32()
	if r.err == nil && n > 1 {
		return fmt.Errorf("%d memories: a module may declare one", n)
	}
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.byte()
		if r.err != nil {
			break
		}
		if flags != 0 && flags != 1 {
			return fmt.Errorf("memory limits flags 0x%x: shared and 64-bit memories are not supported", flags)
		}
		lo := uint64(r.u32())
		hi := uint64(maxPages)
		if flags == 1 {
			hi = uint64(r.u32())
		}
		if r.err != nil {
			break
		}
		if lo > maxPages || hi > maxPages {
			return fmt.Errorf("memory of %d..%d pages: wasm32 memory holds at most %d pages", lo, hi, maxPages)
		}
		if hi < lo {
			return fmt.Errorf("memory maximum %d pages below its minimum %d", hi, lo)
		}
		if lo*PageSize > lim.MemoryBytes {
			return fmt.Errorf("%w: memory of %d MiB to start with, more than the %d MiB allowed", ErrTooLarge, lo*PageSize>>20, lim.MemoryBytes>>20)
		}
	}
	if r.err != nil {
		return fmt.Errorf("memory section: %w", r.err)
	}
	return r.end("memory")
}

func checkExports(r *reader) (hasStart bool, err error) {
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		name := r.name()
		kind := r.byte()
		r.u32()
		if name == "_start" && kind == 0 {
			hasStart = true
		}
	}
	if r.err != nil {
		return false, fmt.Errorf("export section: %w", r.err)
	}
	return hasStart, r.end("export")
}

// reader reads the binary format's primitives; the first error sticks and
// later reads return zero values.
type reader struct {
	b   []byte
	off int
	err error
}

var errTruncated = errors.New("truncated")

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.err = errTruncated
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

// leb reads an unsigned LEB128 of at most bits bits.
func (r *reader) leb(bits uint) uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		if shift >= bits || (shift+7 > bits && c&0x7f>>(bits-shift) != 0) {
			r.err = errors.New("integer too large")
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
}

func (r *reader) u32() uint32 { return uint32(r.leb(32)) }

func (r *reader) name() string {
	n := r.u32()
	if r.err != nil {
		return ""
	}
	if uint64(n) > uint64(len(r.b)-r.off) {
		r.err = errTruncated
		return ""
	}
	s := string(r.b[r.off : r.off+int(n)])
	r.off += int(n)
	return s
}

func (r *reader) end(section string) error {
	if r.off != len(r.b) {
		return fmt.Errorf("%s section: %d bytes left over after its entries", section, len(r.b)-r.off)
	}
	return nil
}
