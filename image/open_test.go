package image

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
)

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func info(t *testing.T, d block.Driver) block.Info {
	t.Helper()
	in, err := d.Info()
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func TestProbeFallsBackToRawAndGuardsTheHead(t *testing.T) {
	registerTestFormats()
	name := filepath.Join(t.TempDir(), "disk.img")
	writeFile(t, name, make([]byte, 64<<10))

	d, err := Open(name, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if f := info(t, d).Format; f != "raw" {
		t.Fatalf("probed format %q, want raw", f)
	}
	// A guest writing a tfmt header (with a backing file) into its probed
	// raw disk must be refused: rule 7.
	evil := tfmtHead("/etc/shadow", "raw")
	err = d.Pwrite(evil[:16], 0, 0)
	if !errors.Is(err, block.ErrInvalid) {
		t.Fatalf("header write into probed raw: err %v, want ErrInvalid", err)
	}
	// Same bytes elsewhere, or bytes that do not form a header, are fine.
	if err := d.Pwrite(evil[:16], 8192, 0); err != nil {
		t.Fatalf("write at 8192: %v", err)
	}
	if err := d.Pwrite([]byte("hello"), 0, 0); err != nil {
		t.Fatalf("harmless write at 0: %v", err)
	}
	// A partial write that completes a header with bytes already there is
	// caught too.
	if err := d.Pwrite([]byte("TF"), 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Pwrite([]byte("MT"), 2, 0); !errors.Is(err, block.ErrInvalid) {
		t.Fatalf("completing a header: err %v, want ErrInvalid", err)
	}

	// With an explicit -f raw the same write is allowed.
	d2, err := Open(name, Options{Format: "raw"})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if err := d2.Pwrite(evil[:16], 0, 0); err != nil {
		t.Fatalf("explicit raw: %v", err)
	}
}

func TestExplicitFormatWinsAndNeverOpensBacking(t *testing.T) {
	registerTestFormats()
	dir := t.TempDir()
	top := filepath.Join(dir, "top")
	// The header names a backing file that does not exist: opening it as
	// tfmt fails, opening it as raw must not even look.
	writeFile(t, top, append(tfmtHead("missing-base", "raw"), make([]byte, 4096)...))
	if _, err := Open(top, Options{}); err == nil || !strings.Contains(err.Error(), "missing-base") ||
		!strings.HasPrefix(err.Error(), "open "+top+": ") {
		t.Fatalf("probed tfmt with missing backing: err %v, want one naming the overlay, then missing-base", err)
	}
	d, err := Open(top, Options{Format: "raw"})
	if err != nil {
		t.Fatalf("-f raw: %v", err)
	}
	defer d.Close()
	if block.BackingOf(d) != nil {
		t.Fatal("-f raw image has a backing node")
	}
	if got, want := d.Size(), int64(tfmtHeader+4096); got != want {
		t.Fatalf("raw size %d, want %d", got, want)
	}
}

func TestBackingResolvedRelativeAndReadOnly(t *testing.T) {
	registerTestFormats()
	dir := t.TempDir()
	base := filepath.Join(dir, "sub", "base.raw")
	top := filepath.Join(dir, "sub", "top.tfmt")
	data := make([]byte, 8192)
	for i := range data {
		data[i] = byte(i % 251)
	}
	writeFile(t, base, data)
	if err := Create(top, "tfmt", CreateOptions{Backing: "base.raw", BackingFormat: "raw"}); err != nil {
		t.Fatalf("create overlay: %v", err)
	}
	// Open from another working directory: the relative name must resolve
	// against the overlay's folder, not the cwd.
	d, err := Open(top, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Size() != 8192 {
		t.Fatalf("overlay size %d, want the backing's 8192", d.Size())
	}
	b := block.BackingOf(d)
	if b == nil {
		t.Fatal("no backing node")
	}
	got := make([]byte, 100)
	if err := d.Pread(got, 1000); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(data[1000:1100]) {
		t.Fatal("overlay did not read through to its backing file")
	}
	if err := b.Pwrite([]byte{1}, 0, 0); !errors.Is(err, block.ErrReadOnly) {
		t.Fatalf("write to backing node: err %v, want ErrReadOnly", err)
	}
	// NoBacking leaves the chain closed.
	d2, err := Open(top, Options{NoBacking: true, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if block.BackingOf(d2) != nil {
		t.Fatal("NoBacking opened a backing node")
	}
}

func TestBackingLoop(t *testing.T) {
	registerTestFormats()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeFile(t, a, append(tfmtHead("b", "tfmt"), make([]byte, 512)...))
	writeFile(t, b, append(tfmtHead("a", ""), make([]byte, 512)...))
	_, err := Open(a, Options{})
	if err == nil || !strings.Contains(err.Error(), "loop") {
		t.Fatalf("a -> b -> a: err %v, want a loop error", err)
	}
	self := filepath.Join(dir, "self")
	writeFile(t, self, append(tfmtHead("./self", ""), make([]byte, 512)...))
	if _, err := Open(self, Options{}); err == nil || !strings.Contains(err.Error(), "loop") {
		t.Fatalf("self -> self: err %v, want a loop error", err)
	}
}

func TestOpenErrors(t *testing.T) {
	registerTestFormats()
	dir := t.TempDir()
	img := filepath.Join(dir, "x.img")
	writeFile(t, img, make([]byte, 4096))
	cases := []struct {
		name   string
		o      Options
		want   string
		target error
	}{
		{filepath.Join(dir, "nope"), Options{}, "no such file", os.ErrNotExist},
		{dir, Options{}, "is a directory", block.ErrInvalid},
		{img, Options{Format: "qcow9"}, `unknown format "qcow9" (known: raw, tfmt)`, block.ErrNotSupported},
		{img, Options{Cache: "sometimes"}, "invalid cache mode", block.ErrInvalid},
		{img, Options{Discard: "maybe"}, "", block.ErrInvalid},
		{"gopher://host/x", Options{}, `unknown protocol "gopher"`, block.ErrNotSupported},
		{"", Options{}, "empty image name", block.ErrInvalid},
	}
	for _, c := range cases {
		d, err := Open(c.name, c.o)
		if err == nil {
			d.Close()
			t.Errorf("Open(%q, %+v) succeeded", c.name, c.o)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) || !errors.Is(err, c.target) || strings.Contains(msg, "\n") {
			t.Errorf("Open(%q, %+v) = %q; want one line containing %q matching %v", c.name, c.o, msg, c.want, c.target)
		}
		if c.name != "" && !strings.HasPrefix(msg, "open "+c.name+": ") {
			t.Errorf("Open(%q) error %q does not start with \"open NAME: \"", c.name, msg)
		}
	}
}

func TestReadOnlyOpen(t *testing.T) {
	registerTestFormats()
	img := filepath.Join(t.TempDir(), "x.img")
	writeFile(t, img, make([]byte, 4096))
	d, err := Open(img, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Pwrite([]byte{1}, 0, 0); !errors.Is(err, block.ErrReadOnly) {
		t.Fatalf("write on read-only open: %v", err)
	}
}

func TestProtocolURL(t *testing.T) {
	registerTestFormats()
	d, err := Open("fake://whatever", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Size() != 1<<20 {
		t.Fatalf("size %d", d.Size())
	}
	if f := info(t, d).Format; f != "raw" {
		t.Fatalf("format of an empty fake:// node: %q, want probed raw", f)
	}
	for _, s := range []string{"nbd://h/x", "nbd+unix:///x?socket=/s", "FAKE://x"} {
		if !IsURL(s) {
			t.Errorf("IsURL(%q) = false", s)
		}
	}
	for _, s := range []string{"/tmp/a:b", "a", "c:/x", "dir/x://y", "://x"} {
		if IsURL(s) {
			t.Errorf("IsURL(%q) = true", s)
		}
	}
}

func TestResolveBacking(t *testing.T) {
	cases := [][3]string{
		{"top.qcow2", "base.raw", "base.raw"},
		{"dir/top.qcow2", "base.raw", "dir/base.raw"},
		{"/a/b/top", "../base", "/a/b/../base"},
		{"/a/b/top", "/abs/base", "/abs/base"},
		{"dir/top", "nbd://h/e", "nbd://h/e"},
		{"nbd://h/top", "base", "base"},
	}
	for _, c := range cases {
		if got := ResolveBacking(c[0], c[1]); got != c[2] {
			t.Errorf("ResolveBacking(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

func TestParseKeyValues(t *testing.T) {
	m, err := ParseKeyValues("a=1,b=x,,y,c=")
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 3 || m["a"] != "1" || m["b"] != "x,y" || m["c"] != "" {
		t.Fatalf("got %v", m)
	}
	for _, bad := range []string{"novalue", "=v", "a=1,b"} {
		if _, err := ParseKeyValues(bad); err == nil {
			t.Errorf("ParseKeyValues(%q) succeeded", bad)
		}
	}
}

func TestCreateErrors(t *testing.T) {
	registerTestFormats()
	dir := t.TempDir()
	name := filepath.Join(dir, "n.img")
	cases := []struct {
		format string
		o      CreateOptions
		want   string
	}{
		{"qcow9", CreateOptions{Size: 1}, `unknown format "qcow9"`},
		{"raw", CreateOptions{Size: -1}, "negative size"},
		{"raw", CreateOptions{Size: 1, Backing: "b"}, "no backing"},
		{"raw", CreateOptions{Size: 1, Options: map[string]string{"bogus": "1"}}, `"bogus"`},
		{"tfmt", CreateOptions{Backing: "missing"}, "missing"},
	}
	for _, c := range cases {
		err := Create(name, c.format, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Create(%s, %+v) = %v, want an error containing %q", c.format, c.o, err, c.want)
		}
	}
	if err := Create(name, "raw", CreateOptions{Size: 12345}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(name); err != nil || st.Size() != 12345 {
		t.Fatalf("created raw: %v %v", st, err)
	}
}
