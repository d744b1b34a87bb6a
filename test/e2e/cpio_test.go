package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// cpioWriter writes a cpio archive in the "newc" format the kernel unpacks
// as an initramfs: a 110-byte ASCII header, the NUL-terminated name padded to
// 4 bytes, the data padded to 4 bytes, and a TRAILER!!! entry at the end.
// Entries are owned by root and dated 0. It is not safe for concurrent use.
type cpioWriter struct {
	w   *bufio.Writer
	ino uint32
	err error
}

const (
	cpioModeDir     = 0o040000
	cpioModeFile    = 0o100000
	cpioModeSymlink = 0o120000
	cpioModeCharDev = 0o020000
)

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriter(w)}
}

// entry writes one archive member. name has no leading slash; mode holds
// the type and permission bits; data is the content (a symlink's target).
func (c *cpioWriter) entry(name string, mode uint32, data []byte, rdevMajor, rdevMinor uint32) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := uint32(1)
	if mode&0o170000 == cpioModeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write(append([]byte(name), 0))
	c.pad(len(hdr) + len(name) + 1)
	c.write(data)
	c.pad(len(data))
}

func (c *cpioWriter) write(p []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(p)
	}
}

func (c *cpioWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// Dir adds a directory (0755).
func (c *cpioWriter) Dir(name string) { c.entry(name, cpioModeDir|0o755, nil, 0, 0) }

// File adds a regular file with the permission bits perm.
func (c *cpioWriter) File(name string, perm uint32, data []byte) {
	c.entry(name, cpioModeFile|perm&0o7777, data, 0, 0)
}

// Symlink adds a symbolic link name -> target.
func (c *cpioWriter) Symlink(name, target string) {
	c.entry(name, cpioModeSymlink|0o777, []byte(target), 0, 0)
}

// CharDev adds a character device node (0600).
func (c *cpioWriter) CharDev(name string, major, minor uint32) {
	c.entry(name, cpioModeCharDev|0o600, nil, major, minor)
}

// Close writes the trailer and flushes; it returns the first error seen.
func (c *cpioWriter) Close() error {
	c.entry("TRAILER!!!", 0, nil, 0, 0)
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}

// TestCPIOWriter checks the archive against GNU cpio's own listing and
// extraction: names, types, symlink targets, contents and padding for
// names and data of every length modulo 4.
func TestCPIOWriter(t *testing.T) {
	testutil.NeedTool(t, "cpio")
	dir := t.TempDir()
	archive := filepath.Join(dir, "a.cpio")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	w := newCPIOWriter(f)
	w.Dir("d")
	want := map[string]string{}
	for i := range 9 {
		name := "d/" + strings.Repeat("n", i+1)
		data := strings.Repeat(string(rune('a'+i)), 4*i+i%4)
		w.File(name, 0o644, []byte(data))
		want[name] = data
	}
	w.File("d/exec", 0o755, []byte("#!/bin/sh\n"))
	w.Symlink("d/link", "n")
	w.CharDev("console", 5, 1)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	list := testutil.MustRun(t, "sh", "-c", "cpio -itv < "+archive+" 2>/dev/null")
	for _, line := range []string{"drwxr-xr-x", "-rwxr-xr-x", "lrwxrwxrwx", "crw-------"} {
		if !strings.Contains(list, line) {
			t.Errorf("cpio -itv shows no %q entry:\n%s", line, list)
		}
	}
	if !strings.Contains(list, "d/link -> n") {
		t.Errorf("cpio -itv does not show the symlink target:\n%s", list)
	}
	out := filepath.Join(dir, "x")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	// Device nodes need mknod rights; extract everything else.
	_, errs, code := testutil.RunIn(t, out, "sh", "-c", "cpio -id --no-absolute-filenames 'd/*' < "+archive)
	if code != 0 {
		t.Fatalf("cpio -id: exit %d: %s", code, errs)
	}
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != data {
			t.Errorf("%s: got %q, want %q", name, got, data)
		}
	}
	st, err := os.Stat(filepath.Join(out, "d/exec"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o755 {
		t.Errorf("d/exec mode %v, want 0755", st.Mode().Perm())
	}
	if target, err := os.Readlink(filepath.Join(out, "d/link")); err != nil || target != "n" {
		t.Errorf("d/link -> %q, %v; want n", target, err)
	}
}

// cpioList returns the member names of archive as GNU cpio lists them, or
// nil when cpio is not installed.
func cpioList(t *testing.T, archive string) []string {
	t.Helper()
	if _, err := exec.LookPath("cpio"); err != nil {
		return nil
	}
	out := testutil.MustRun(t, "sh", "-c", "cpio -it < "+archive+" 2>/dev/null")
	return strings.Fields(out)
}
