package worker

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// Names of the entries of a result archive.
const (
	EntryExitCode = "exit_code" // decimal exit code and a newline
	EntryStdout   = "stdout"
	EntryStderr   = "stderr"
	EntryOutput   = "out" // the output directory; its files under "out/"
)

// PackLimits bound what Pack reads from an output directory.
type PackLimits struct {
	MaxBytes int64 // total size of regular files; <= 0: unlimited
	MaxFiles int   // number of entries; <= 0: unlimited
}

// Pack writes a result archive to w: a tar holding exit_code, stdout,
// stderr and the output directory under out/, entries sorted by name, every
// timestamp the Unix epoch, owner 0:0 with no names, modes 0644 / 0755
// (0755 for directories and executables). The same inputs always give the
// same bytes, so the sha256 of the archive identifies the result.
//
// Only directories, regular files and symlinks (stored as links, never
// followed) are packed; other file types are skipped. If outDir exceeds
// lim, Pack returns an error wrapping ErrOutputLimit and writes nothing.
// outDir may be "" (no output directory).
func Pack(w io.Writer, exitCode int, stdout, stderr []byte, outDir string, lim PackLimits) error {
	type entry struct {
		name string // in the archive
		path string // on the host
		info fs.FileInfo
		data []byte // for the in-memory entries (info == nil)
	}
	var entries []entry
	if outDir != "" {
		err := walkOutput(outDir, lim, func(name, path string, info fs.FileInfo) {
			entries = append(entries, entry{name: name, path: path, info: info})
		})
		if err != nil {
			return fmt.Errorf("pack output directory: %w", err)
		}
	}
	entries = append(entries,
		entry{name: EntryExitCode, data: []byte(strconv.Itoa(exitCode) + "\n")},
		entry{name: EntryStdout, data: stdout},
		entry{name: EntryStderr, data: stderr})
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })

	epoch := time.Unix(0, 0).UTC()
	tw := tar.NewWriter(w)
	for _, e := range entries {
		var err error
		if e.info == nil {
			hdr := &tar.Header{Typeflag: tar.TypeReg, Name: e.name, Size: int64(len(e.data)), Mode: 0o644, ModTime: epoch, Format: tar.FormatPAX}
			if err = tw.WriteHeader(hdr); err == nil {
				_, err = tw.Write(e.data)
			}
		} else {
			err = packEntry(tw, e.name, e.path, e.info, epoch)
		}
		if err != nil {
			return fmt.Errorf("pack %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	return nil
}

// walkOutput visits the packable entries of outDir (directories, regular
// files and symlinks; visit may be nil) by their archive names, and fails
// with an error wrapping ErrOutputLimit once they pass lim.
func walkOutput(outDir string, lim PackLimits, visit func(name, path string, info fs.FileInfo)) error {
	var total int64
	var n int
	return filepath.WalkDir(outDir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p != outDir {
			return nil // removed under the walk (a running job)
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(outDir, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		t := info.Mode().Type()
		if t != 0 && t != fs.ModeDir && t != fs.ModeSymlink {
			return nil
		}
		name := EntryOutput
		if rel != "." {
			name += "/" + filepath.ToSlash(rel)
		}
		n++
		if visit != nil {
			visit(name, p, info)
		}
		if t == 0 {
			total += info.Size()
		}
		if lim.MaxBytes > 0 && total > lim.MaxBytes {
			return fmt.Errorf("%w: output directory holds more than %d bytes", ErrOutputLimit, lim.MaxBytes)
		}
		if lim.MaxFiles > 0 && n > lim.MaxFiles {
			return fmt.Errorf("%w: output directory holds more than %d entries", ErrOutputLimit, lim.MaxFiles)
		}
		return nil
	})
}

func packEntry(tw *tar.Writer, name, path string, info fs.FileInfo, epoch time.Time) error {
	hdr := &tar.Header{Name: name, ModTime: epoch, Mode: 0o644, Format: tar.FormatPAX}
	switch info.Mode().Type() {
	case fs.ModeDir:
		hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, name+"/", 0o755
		return tw.WriteHeader(hdr)
	case fs.ModeSymlink:
		target, err := os.Readlink(path)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, target, 0o777
		return tw.WriteHeader(hdr)
	}
	if info.Mode().Perm()&0o111 != 0 {
		hdr.Mode = 0o755
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	// The file may change under us if something still writes to it; copy
	// exactly the size announced.
	n, err := io.Copy(tw, io.LimitReader(f, hdr.Size))
	if err != nil {
		return err
	}
	if n != hdr.Size {
		return errors.New("file shrank while packing")
	}
	return nil
}

// PackBytes is Pack into memory; for tests and small results.
func PackBytes(exitCode int, stdout, stderr []byte, outDir string, lim PackLimits) ([]byte, error) {
	var b bytes.Buffer
	if err := Pack(&b, exitCode, stdout, stderr, outDir, lim); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
