package wasm

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// TestQuotaFS: the output directory's quota follows what the files hold,
// as the packer will measure it. Each step runs against one directory and
// the invariant "bytes left = budget - bytes on disk" is checked after it.
func TestQuotaFS(t *testing.T) {
	const budget, entries = 1000, 5
	dir := t.TempDir()
	q := newQuota(budget, entries)
	qfs := newQuotaFS(dir, q)
	const rw = experimentalsys.O_RDWR | experimentalsys.O_CREAT

	open := func(name string, flag experimentalsys.Oflag) experimentalsys.File {
		t.Helper()
		f, errno := qfs.OpenFile(name, flag, 0o644)
		if errno != 0 {
			t.Fatalf("open %s: %v", name, errno)
		}
		return f
	}
	write := func(f experimentalsys.File, n int) experimentalsys.Errno {
		_, errno := f.Write(make([]byte, n))
		return errno
	}
	pwrite := func(f experimentalsys.File, n int, off int64) experimentalsys.Errno {
		_, errno := f.Pwrite(make([]byte, n), off)
		return errno
	}
	var a, b experimentalsys.File

	steps := []struct {
		name    string
		do      func() experimentalsys.Errno
		want    experimentalsys.Errno
		refused bool // the quota has refused something by now
	}{
		{"create a file", func() experimentalsys.Errno { a = open("a", rw); return 0 }, 0, false},
		{"write 400 bytes", func() experimentalsys.Errno { return write(a, 400) }, 0, false},
		{"rewrite them in place: free", func() experimentalsys.Errno { return pwrite(a, 400, 0) }, 0, false},
		{"overlap the end: 100 more", func() experimentalsys.Errno { return pwrite(a, 200, 300) }, 0, false},
		{"second file, 400 bytes", func() experimentalsys.Errno { b = open("b", rw); return write(b, 400) }, 0, false},
		{"101 more is refused", func() experimentalsys.Errno { return write(b, 101) }, errNoSpace, true},
		{"truncate up past the budget is refused", func() experimentalsys.Errno { return b.Truncate(1000) }, errNoSpace, true},
		{"truncate down frees", func() experimentalsys.Errno { return b.Truncate(100) }, 0, true},
		{"append-mode open writes at the end", func() experimentalsys.Errno {
			c := open("b", experimentalsys.O_WRONLY|experimentalsys.O_APPEND)
			defer c.Close()
			return write(c, 400)
		}, 0, true},
		{"unlink returns the bytes", func() experimentalsys.Errno { b.Close(); return qfs.Unlink("b") }, 0, true},
		{"O_TRUNC returns the bytes", func() experimentalsys.Errno {
			a.Close()
			a = open("a", experimentalsys.O_WRONLY|experimentalsys.O_TRUNC)
			return write(a, 10)
		}, 0, true},
		{"rename over a file returns its bytes", func() experimentalsys.Errno {
			c := open("c", rw)
			defer c.Close()
			if errno := write(c, 50); errno != 0 {
				return errno
			}
			return qfs.Rename("a", "c")
		}, 0, true},
		{"renaming a file onto itself frees nothing", func() experimentalsys.Errno {
			if errno := qfs.Rename("c", "c"); errno != 0 {
				return errno
			}
			if errno := qfs.Link("c", "l"); errno != 0 {
				return errno
			}
			if errno := qfs.Rename("c", "l"); errno != 0 { // another link to the same file
				return errno
			}
			return qfs.Unlink("l")
		}, 0, true},
		{"directories take entries", func() experimentalsys.Errno {
			for _, d := range []string{"d1", "d2", "d3", "d4"} {
				if errno := qfs.Mkdir(d, 0o755); errno != 0 {
					return errno
				}
			}
			return 0
		}, 0, true},
		{"past the entries, creating is refused", func() experimentalsys.Errno {
			_, errno := qfs.OpenFile("e", rw, 0o644)
			return errno
		}, errNoSpace, true},
		{"rmdir frees an entry", func() experimentalsys.Errno {
			if errno := qfs.Rmdir("d4"); errno != 0 {
				return errno
			}
			f, errno := qfs.OpenFile("e", rw, 0o644)
			if errno == 0 {
				f.Close()
			}
			return errno
		}, 0, true},
	}
	for i, s := range steps {
		if got := s.do(); got != s.want {
			t.Fatalf("step %d (%s): errno %v, want %v", i, s.name, got, s.want)
		}
		var used, n int64
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == dir {
				return err
			}
			n++
			if d.Type().IsRegular() {
				info, err := d.Info()
				if err != nil {
					return err
				}
				used += info.Size()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if left := q.bytes.Load(); left != budget-used {
			t.Fatalf("step %d (%s): %d bytes on disk, quota has %d left of %d", i, s.name, used, left, budget)
		}
		if left := q.entries.Load(); left != entries-n {
			t.Fatalf("step %d (%s): %d entries on disk, quota has %d left of %d", i, s.name, n, left, entries)
		}
		if q.refused.Load() != s.refused {
			t.Fatalf("step %d (%s): refused = %v", i, s.name, q.refused.Load())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "c")); err != nil {
		t.Fatal(err)
	}
}
