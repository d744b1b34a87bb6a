package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// TestResizeNegativeSize: qemu-img resize takes "[+|-]SIZE" as its last
// argument, so "resize --shrink IMG -1M" shrinks by 1 MiB. thinblk's flag
// parser took "-1M" for the shorthand flags -1 and -M ("unknown shorthand
// flag: '1' in -1M") and only "IMG -- -1M" worked.
func TestResizeNegativeSize(t *testing.T) {
	bin := testutil.Thinblk(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "n.raw")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		fi, err := os.Stat(img)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	for _, tc := range []struct {
		args []string
		code int
		want int64
	}{
		{[]string{"resize", "-f", "raw", "--shrink", img, "-1M"}, 0, 63 << 20},
		{[]string{"resize", img, "-f", "raw", "-1M", "--shrink"}, 0, 62 << 20},
		{[]string{"resize", "-f", "raw", "--shrink", img, "--", "-2M"}, 0, 60 << 20},
		{[]string{"resize", "-f", "raw", img, "-1M"}, 1, 60 << 20}, // no --shrink: refused
		{[]string{"resize", "-f", "raw", img, "+4M"}, 0, 64 << 20},
	} {
		_, stderr, code := testutil.Run(t, bin, tc.args...)
		if code != tc.code {
			t.Errorf("%q: exit %d (%s), want %d", tc.args, code, stderr, tc.code)
		}
		if got := size(); got != tc.want {
			t.Errorf("%q: size %d, want %d", tc.args, got, tc.want)
		}
	}
	if stdout, stderr, code := testutil.Run(t, bin, "resize", "--help"); code != 0 || !strings.Contains(stdout, "--shrink") {
		t.Errorf("resize --help: exit %d, output %q %q", code, stdout, stderr)
	}
	if _, stderr, code := testutil.Run(t, bin, "resize", "--bogus", img, "1M"); code != 1 || !strings.Contains(stderr, "unknown flag") {
		t.Errorf("resize --bogus: exit %d, stderr %q, want 1 and unknown flag", code, stderr)
	}
}
