package wasm

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// TestQuotaFS: the output directory's quota never under-counts. After every
// step, what it has left is at most the budget minus what the directory
// holds (bytes of its files, and entries), and exactly what the step says:
// growth is charged, only truncation gives bytes back, creations are
// charged for good, and links are refused. The steps include the ways a
// guest could try to slip past it: deleting or renaming over a file it
// still holds open, truncating through a second handle, links.
func TestQuotaFS(t *testing.T) {
	const budget, entries = 1000, 6
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
	var a, b, held experimentalsys.File

	steps := []struct {
		name           string
		do             func() experimentalsys.Errno
		want           experimentalsys.Errno
		bytes, entries int64 // left after the step
	}{
		{"create a file", func() experimentalsys.Errno { a = open("a", rw); return 0 }, 0, 1000, 5},
		{"write 400 bytes", func() experimentalsys.Errno { return write(a, 400) }, 0, 600, 5},
		{"rewrite them in place: free", func() experimentalsys.Errno { return pwrite(a, 400, 0) }, 0, 600, 5},
		{"overlap the end: 100 more", func() experimentalsys.Errno { return pwrite(a, 200, 300) }, 0, 500, 5},
		{"second file, 400 bytes", func() experimentalsys.Errno { b = open("b", rw); return write(b, 400) }, 0, 100, 4},
		{"101 more is refused", func() experimentalsys.Errno { return write(b, 101) }, errNoSpace, 100, 4},
		{"truncate up past the budget is refused", func() experimentalsys.Errno { return b.Truncate(1000) }, errNoSpace, 100, 4},
		{"truncate down frees", func() experimentalsys.Errno { return b.Truncate(100) }, 0, 400, 4},
		{"append-mode open writes at the end", func() experimentalsys.Errno {
			c := open("b", experimentalsys.O_WRONLY|experimentalsys.O_APPEND)
			defer c.Close()
			return write(c, 50)
		}, 0, 350, 4},
		{"O_TRUNC gives the bytes back, even with another handle open", func() experimentalsys.Errno {
			c := open("b", experimentalsys.O_WRONLY|experimentalsys.O_TRUNC)
			defer c.Close()
			return write(c, 10)
		}, 0, 490, 4},
		{"the other handle writing at its old offset pays for the gap", func() experimentalsys.Errno { return write(b, 10) }, 0, 90, 4},
		{"unlink while open gives nothing back", func() experimentalsys.Errno {
			held = b
			return qfs.Unlink("b")
		}, 0, 90, 4},
		{"the unlinked file still grows only within the budget", func() experimentalsys.Errno { return write(held, 91) }, errNoSpace, 90, 4},
		{"rename over a file gives nothing back", func() experimentalsys.Errno {
			c := open("c", rw)
			defer c.Close()
			if errno := write(c, 50); errno != 0 {
				return errno
			}
			return qfs.Rename("c", "a")
		}, 0, 40, 3},
		{"symlinks are refused", func() experimentalsys.Errno { return qfs.Symlink("../../..", "up") }, experimentalsys.EPERM, 40, 3},
		{"hard links are refused", func() experimentalsys.Errno { return qfs.Link("a", "l") }, experimentalsys.EPERM, 40, 3},
		{"directories take entries", func() experimentalsys.Errno {
			for _, d := range []string{"d1", "d2", "d3"} {
				if errno := qfs.Mkdir(d, 0o755); errno != 0 {
					return errno
				}
			}
			return 0
		}, 0, 40, 0},
		{"past the entries, creating is refused", func() experimentalsys.Errno {
			_, errno := qfs.OpenFile("e", rw, 0o644)
			return errno
		}, errNoSpace, 40, 0},
		{"removing a directory does not make room", func() experimentalsys.Errno {
			if errno := qfs.Rmdir("d3"); errno != 0 {
				return errno
			}
			_, errno := qfs.OpenFile("e", rw, 0o644)
			return errno
		}, errNoSpace, 40, 0},
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
		bl, el := q.bytes.Load(), q.entries.Load()
		if bl > budget-used || el > entries-n {
			t.Fatalf("step %d (%s): the quota under-counts: %d bytes and %d entries on disk, %d and %d left of %d and %d",
				i, s.name, used, n, bl, el, budget, entries)
		}
		if bl != s.bytes || el != s.entries {
			t.Fatalf("step %d (%s): %d bytes and %d entries left, want %d and %d", i, s.name, bl, el, s.bytes, s.entries)
		}
	}
	if !q.refused.Load() {
		t.Fatal("refusals not remembered")
	}
	if _, err := os.Lstat(filepath.Join(dir, "up")); err == nil {
		t.Fatal("a symlink was created")
	}
}
