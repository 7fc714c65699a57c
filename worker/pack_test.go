package worker

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeTree creates files (path -> content) under dir in the given order.
func writeTree(t *testing.T, dir string, files map[string]string, order []string) {
	t.Helper()
	for _, p := range order {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(files[p]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func randomTree(rng *rand.Rand) (map[string]string, []string) {
	files := map[string]string{}
	var order []string
	for range rng.IntN(12) + 1 {
		depth := rng.IntN(3)
		p := ""
		for d := 0; d <= depth; d++ {
			if p != "" {
				p += "/"
			}
			p += fmt.Sprintf("n%d", rng.IntN(4))
		}
		p += ".txt"
		if _, ok := files[p]; ok {
			continue
		}
		files[p] = fmt.Sprintf("content %x", rng.Uint64())
		order = append(order, p)
	}
	return files, order
}

// TestPackIsDeterministic: the same result packs to the same bytes no
// matter the order files were written in or their timestamps; a change to
// any part changes the bytes.
func TestPackIsDeterministic(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range 20 {
		files, order := randomTree(rng)
		a, b := t.TempDir(), t.TempDir()
		writeTree(t, a, files, order)
		rev := append([]string(nil), order...)
		rng.Shuffle(len(rev), func(i, j int) { rev[i], rev[j] = rev[j], rev[i] })
		writeTree(t, b, files, rev)
		old := time.Unix(12345, 0)
		for _, p := range order {
			_ = os.Chtimes(filepath.Join(b, p), old, old)
		}
		pa, err := PackBytes(0, []byte("out"), []byte("err"), a, PackLimits{})
		if err != nil {
			t.Fatal(err)
		}
		pb, err := PackBytes(0, []byte("out"), []byte("err"), b, PackLimits{})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pa, pb) {
			t.Fatalf("seed %d case %d: same content packed differently", seed, i)
		}
		for _, v := range []struct {
			code   int
			stdout string
			stderr string
		}{{1, "out", "err"}, {0, "out2", "err"}, {0, "out", "err2"}} {
			pc, err := PackBytes(v.code, []byte(v.stdout), []byte(v.stderr), a, PackLimits{})
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(pa, pc) {
				t.Fatalf("seed %d: changing %+v did not change the archive", seed, v)
			}
		}
		if err := os.WriteFile(filepath.Join(a, order[0]), []byte("changed"), 0o644); err != nil {
			t.Fatal(err)
		}
		pc, _ := PackBytes(0, []byte("out"), []byte("err"), a, PackLimits{})
		if bytes.Equal(pa, pc) {
			t.Fatalf("seed %d: changing a file did not change the archive", seed)
		}
	}
}

func TestPackLayout(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"b.txt": "B", "a/x.bin": "X"}, []string{"b.txt", "a/x.bin"})
	if err := os.Chmod(filepath.Join(dir, "a/x.bin"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	arch, err := PackBytes(7, []byte("so"), []byte("se"), dir, PackLimits{})
	if err != nil {
		t.Fatal(err)
	}
	type ent struct {
		name, body, link string
		mode             int64
		typ              byte
	}
	want := []ent{
		{"exit_code", "7\n", "", 0o644, tar.TypeReg},
		{"out/", "", "", 0o755, tar.TypeDir},
		{"out/a/", "", "", 0o755, tar.TypeDir},
		{"out/a/x.bin", "X", "", 0o755, tar.TypeReg},
		{"out/b.txt", "B", "", 0o644, tar.TypeReg},
		{"out/link", "", "/etc/passwd", 0o777, tar.TypeSymlink},
		{"stderr", "se", "", 0o644, tar.TypeReg},
		{"stdout", "so", "", 0o644, tar.TypeReg},
	}
	tr := tar.NewReader(bytes.NewReader(arch))
	var got []ent
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(time.Unix(0, 0)) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: metadata not fixed: %v %d:%d %q:%q", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		body, _ := io.ReadAll(tr)
		got = append(got, ent{h.Name, string(body), h.Linkname, h.Mode, h.Typeflag})
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("archive\n got %v\nwant %v", got, want)
	}
}

func TestPackLimits(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a": "12345", "b": "67890"}, []string{"a", "b"})
	cases := []struct {
		lim PackLimits
		ok  bool
	}{
		{PackLimits{}, true},
		{PackLimits{MaxBytes: 10}, true},
		{PackLimits{MaxBytes: 9}, false},
		{PackLimits{MaxFiles: 3}, true}, // out/, out/a, out/b
		{PackLimits{MaxFiles: 2}, false},
	}
	for _, c := range cases {
		_, err := PackBytes(0, nil, nil, dir, c.lim)
		if c.ok != (err == nil) || (err != nil && !errors.Is(err, ErrOutputLimit)) {
			t.Errorf("%+v: err = %v, want ok=%v (or ErrOutputLimit)", c.lim, err, c.ok)
		}
	}
}
