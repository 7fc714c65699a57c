package wasm

import (
	"io"
	"io/fs"
	"sync/atomic"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
)

// errNoSpace is what a write past the quota returns to the guest. WASI has
// ENOSPC, but wazero's sys.Errno has no such value and maps what it does
// not know to EIO, so the guest sees an I/O error; the job's reason names
// the limit.
const errNoSpace = experimentalsys.EIO

// quota is the disk a job bought, shared by every file of its output
// directory: bytes the files hold and entries created. A write that would
// pass it fails (errNoSpace), so a guest cannot fill the provider's disk
// between two measurements; refused remembers that one did.
type quota struct {
	bytes   atomic.Int64 // bytes left
	entries atomic.Int64 // entries left
	refused atomic.Bool
}

func newQuota(bytes, entries int64) *quota {
	q := &quota{}
	q.bytes.Store(bytes)
	q.entries.Store(entries)
	return q
}

// take draws n from c, or nothing and false when c holds less.
func (q *quota) take(c *atomic.Int64, n int64) bool {
	if n <= 0 {
		return true
	}
	for {
		left := c.Load()
		if left < n {
			q.refused.Store(true)
			return false
		}
		if c.CompareAndSwap(left, left-n) {
			return true
		}
	}
}

// quotaFS is the guest's view of the output directory, metered by a quota.
//
//   - Bytes are charged as files grow (writes past the end, truncates up),
//     so rewriting a file in place costs nothing. They come back only when
//     a file's data is really freed: truncated down, or opened with O_TRUNC.
//     Unlinking or renaming over a file returns nothing, because an open
//     handle can keep its bytes on disk after its name is gone.
//   - Every file or directory created takes an entry, for good: the budget
//     bounds creations, so inodes cannot be churned without bound either.
//   - Symbolic and hard links are refused (EPERM). A job's output has no use
//     for them, a hard link would let one file's bytes be charged once and
//     packed twice, and wazero's directory mount follows a symlink whose
//     target climbs out of the directory: a guest could otherwise read and
//     write the provider's files.
type quotaFS struct {
	experimentalsys.FS
	q *quota
}

func newQuotaFS(dir string, q *quota) quotaFS {
	return quotaFS{FS: sysfs.DirFS(dir), q: q}
}

func (f quotaFS) OpenFile(path string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	st, lerr := f.FS.Lstat(path)
	exists := lerr == 0
	created := !exists && flag&experimentalsys.O_CREAT != 0
	if created && !f.q.take(&f.q.entries, 1) {
		return nil, errNoSpace
	}
	file, errno := f.FS.OpenFile(path, flag, perm)
	if errno != 0 {
		if created {
			f.q.entries.Add(1) // nothing was created
		}
		return nil, errno
	}
	if exists && flag&experimentalsys.O_TRUNC != 0 && st.Mode.Type() == 0 {
		f.q.bytes.Add(st.Size) // the file's data is gone, whoever holds it
	}
	return &quotaFile{File: file, q: f.q}, 0
}

func (f quotaFS) Mkdir(path string, perm fs.FileMode) experimentalsys.Errno {
	if !f.q.take(&f.q.entries, 1) {
		return errNoSpace
	}
	errno := f.FS.Mkdir(path, perm)
	if errno != 0 {
		f.q.entries.Add(1) // nothing was created
	}
	return errno
}

// Symlink is refused: see quotaFS.
func (f quotaFS) Symlink(oldPath, linkName string) experimentalsys.Errno {
	return experimentalsys.EPERM
}

// Link is refused: see quotaFS.
func (f quotaFS) Link(oldPath, newPath string) experimentalsys.Errno {
	return experimentalsys.EPERM
}

// quotaFile meters one open file's growth.
type quotaFile struct {
	experimentalsys.File
	q *quota
}

// grow reserves the bytes a write of n at off (off < 0: the current
// position, or the end in append mode) adds past the end of the file.
func (f *quotaFile) grow(off int64, n int) (int64, experimentalsys.Errno) {
	st, errno := f.File.Stat()
	if errno != 0 {
		return 0, errno
	}
	if off < 0 {
		if f.File.IsAppend() {
			off = st.Size
		} else if off, errno = f.File.Seek(0, io.SeekCurrent); errno != 0 {
			return 0, errno
		}
	}
	add := off + int64(n) - st.Size
	if add <= 0 {
		return 0, 0
	}
	if !f.q.take(&f.q.bytes, add) {
		return 0, errNoSpace
	}
	return add, 0
}

func (f *quotaFile) Write(buf []byte) (int, experimentalsys.Errno) {
	add, errno := f.grow(-1, len(buf))
	if errno != 0 {
		return 0, errno
	}
	n, errno := f.File.Write(buf)
	f.refund(add, len(buf)-n)
	return n, errno
}

func (f *quotaFile) Pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	if off < 0 {
		return 0, experimentalsys.EINVAL
	}
	add, errno := f.grow(off, len(buf))
	if errno != 0 {
		return 0, errno
	}
	n, errno := f.File.Pwrite(buf, off)
	f.refund(add, len(buf)-n)
	return n, errno
}

// refund returns the part of a reservation a short write did not use.
func (f *quotaFile) refund(added int64, unwritten int) {
	if back := min(added, int64(unwritten)); back > 0 {
		f.q.bytes.Add(back)
	}
}

func (f *quotaFile) Truncate(size int64) experimentalsys.Errno {
	st, errno := f.File.Stat()
	if errno != 0 {
		return errno
	}
	delta := size - st.Size
	if delta > 0 && !f.q.take(&f.q.bytes, delta) {
		return errNoSpace
	}
	if errno := f.File.Truncate(size); errno != 0 {
		if delta > 0 {
			f.q.bytes.Add(delta)
		}
		return errno
	}
	if delta < 0 {
		f.q.bytes.Add(-delta)
	}
	return 0
}
