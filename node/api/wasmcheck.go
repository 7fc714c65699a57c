package api

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

// WASIModule is the only import module a provider's WASM executor offers.
const WASIModule = "wasi_snapshot_preview1"

// CheckWasmModule checks a WebAssembly module's structure without compiling
// it: the header, every section's id, order and bounds, the imports (only
// WASI preview 1) and the exports (a `_start` function: a WASI command).
// It costs microseconds where compiling costs most of a second, and it
// turns the usual mistakes (a truncated or wrong file, a module built for
// the browser or for another host, a library without an entry point) into
// an error at submit time instead of a failed run. Function bodies are
// validated by the provider's compiler.
func CheckWasmModule(b []byte) error {
	if !bytes.HasPrefix(b, wasmHeader) {
		return errors.New("not a WebAssembly binary module (no \\0asm version 1 header)")
	}
	r := &wasmReader{b: b, off: len(wasmHeader)}
	last := -1 // position in sectionOrder of the last non-custom section
	hasStart := false
	for r.off < len(r.b) {
		at := r.off
		id := r.byte()
		size := r.u32()
		if r.err != nil {
			return fmt.Errorf("section header at byte %d: %w", at, r.err)
		}
		if uint64(size) > uint64(len(r.b)-r.off) {
			return fmt.Errorf("section %d at byte %d: %d bytes, past the end of the module (%d bytes): truncated?", id, at, size, len(r.b))
		}
		body := &wasmReader{b: r.b[:r.off+int(size)], off: r.off}
		r.off += int(size)
		if id == 0 { // custom: a name, then anything
			body.name()
			if body.err != nil {
				return fmt.Errorf("custom section at byte %d: %w", at, body.err)
			}
			continue
		}
		pos := slices.Index(sectionOrder, id)
		if pos < 0 {
			return fmt.Errorf("unknown section id %d at byte %d", id, at)
		}
		if pos <= last {
			return fmt.Errorf("section %d at byte %d is out of order or repeated", id, at)
		}
		last = pos
		var err error
		switch id {
		case secImport:
			err = checkImports(body)
		case secExport:
			hasStart, err = checkExports(body)
		}
		if err != nil {
			return err
		}
	}
	if !hasStart {
		return errors.New("exports no _start function: a job must be a WASI command module (Go: GOOS=wasip1 GOARCH=wasm go build; Rust: --target wasm32-wasip1)")
	}
	return nil
}

// Section ids in the order the binary format requires (tag, 13, sits
// between memory and global; data count, 12, before code).
const (
	secImport = 2
	secExport = 7
)

var sectionOrder = []byte{1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11}

func checkImports(r *wasmReader) error {
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		mod, field := r.name(), r.name()
		if r.err != nil {
			break
		}
		if mod != WASIModule {
			return fmt.Errorf("imports %q.%q: providers offer only %s (was it built for a browser or another host?)", mod, field, WASIModule)
		}
		switch kind := r.byte(); kind {
		case 0: // function: type index
			r.u32()
		case 1: // table: reference type, limits
			r.byte()
			r.limits()
		case 2: // memory
			r.limits()
		case 3: // global: value type, mutability
			r.byte()
			r.byte()
		case 4: // tag: attribute, type index
			r.byte()
			r.u32()
		default:
			if r.err == nil {
				return fmt.Errorf("import %q.%q: unknown kind %d", mod, field, kind)
			}
		}
	}
	if r.err != nil {
		return fmt.Errorf("import section: %w", r.err)
	}
	return r.end("import")
}

func checkExports(r *wasmReader) (hasStart bool, err error) {
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

// wasmReader reads the binary format's primitives; the first error sticks
// and later reads return zero values.
type wasmReader struct {
	b   []byte
	off int
	err error
}

var errTruncated = errors.New("truncated")

func (r *wasmReader) byte() byte {
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
func (r *wasmReader) leb(bits uint) uint64 {
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

func (r *wasmReader) u32() uint32 { return uint32(r.leb(32)) }

func (r *wasmReader) name() string {
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

// limits reads a table or memory type's limits: a flags byte (bit 0: a
// maximum follows; bit 2: 64-bit), the minimum and the maximum.
func (r *wasmReader) limits() {
	flags := r.byte()
	bits := uint(32)
	if flags&4 != 0 {
		bits = 64
	}
	r.leb(bits)
	if flags&1 != 0 {
		r.leb(bits)
	}
}

func (r *wasmReader) end(section string) error {
	if r.off != len(r.b) {
		return fmt.Errorf("%s section: %d bytes left over after its entries", section, len(r.b)-r.off)
	}
	return nil
}
