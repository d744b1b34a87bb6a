package cli

import (
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// thinblk runs the thinblk binary.
func thinblk(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return testutil.Run(t, testutil.Thinblk(t), args...)
}

// mustThinblk runs thinblk and fails the test unless it exits 0.
func mustThinblk(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := thinblk(t, args...)
	if code != 0 {
		t.Fatalf("thinblk %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// stBlocks returns the allocated 512-byte blocks of a file.
func stBlocks(t *testing.T, name string) int64 {
	t.Helper()
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Blocks
}

// newFile creates a file of size bytes (one hole).
func newFile(t *testing.T, dir, name string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeAt writes b at off in the file name.
func writeAt(t *testing.T, name string, b []byte, off int64) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(r *rand.Rand, n int64) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

// fallocate runs util-linux fallocate (punch with -p) on a range.
func fallocate(t *testing.T, name string, off, n int64, punch bool) {
	t.Helper()
	args := []string{"-o", strconv.FormatInt(off, 10), "-l", strconv.FormatInt(n, 10)}
	if punch {
		args = append([]string{"-p"}, args...)
	}
	testutil.MustRun(t, "fallocate", append(args, name)...)
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	testutil.MustRun(t, "cp", "--sparse=always", src, dst)
}

// dropTimings removes qemu-io's timing lines, which differ run to run.
func dropTimings(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, " ops; ") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}
