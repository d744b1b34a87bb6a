package cli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// checkOneLineError asserts the shape of every user-facing failure: exit
// code 1, exactly one line on stderr starting "thinblk: " and containing
// want, no Go panic, stack trace or usage dump.
func checkOneLineError(t *testing.T, args []string, stdout, stderr string, code int, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	switch {
	case code != 1:
		t.Errorf("thinblk %q: exit %d, want 1 (stderr %q)", args, code, stderr)
	case stderr == "" || len(lines) != 1:
		t.Errorf("thinblk %q: stderr is not one line: %q", args, stderr)
	case !strings.HasPrefix(stderr, "thinblk: "):
		t.Errorf("thinblk %q: stderr %q does not start with \"thinblk: \"", args, stderr)
	case !strings.Contains(strings.ToLower(stderr), strings.ToLower(want)):
		t.Errorf("thinblk %q: stderr %q does not mention %q", args, stderr, want)
	}
	for _, bad := range []string{"goroutine", "panic", "Usage:", ".go:"} {
		if strings.Contains(stderr, bad) || strings.Contains(stdout, bad) {
			t.Errorf("thinblk %q: output contains %q:\n%s%s", args, bad, stdout, stderr)
		}
	}
}

func TestBadInputOneLineExit1(t *testing.T) {
	dir := t.TempDir()
	img := newFile(t, dir, "img.raw", 4<<20)
	missing := filepath.Join(dir, "missing.raw")
	cases := []struct {
		args []string
		want string
	}{
		// missing file
		{[]string{"info", missing}, "no such file"},
		{[]string{"map", missing}, "no such file"},
		{[]string{"io", "-c", "read 0 1", missing}, "no such file"},
		// unparsable sizes
		{[]string{"create", "-f", "raw", filepath.Join(dir, "new.raw"), "1x"}, `invalid size "1x"`},
		{[]string{"create", "-f", "raw", filepath.Join(dir, "new.raw"), "-5"}, "unknown shorthand flag"},
		{[]string{"create", "-f", "raw", filepath.Join(dir, "new.raw"), "--", "-5"}, `invalid size "-5"`},
		{[]string{"io", "-c", "write 0 1x", img}, `invalid size "1x"`},
		{[]string{"map", "--start-offset", "zz", img}, `invalid size "zz"`},
		// negative and out-of-range offsets in io
		{[]string{"io", "-c", "write -- -1 4k", img}, `invalid size "-1"`},
		{[]string{"io", "-c", "read -- -4096 4k", img}, `invalid size "-4096"`},
		{[]string{"io", "-c", "write 4M 4k", img}, "past the end"},
		{[]string{"io", "-c", "read 0 5M", img}, "past the end"},
		{[]string{"io", "-c", "write -z 4M 1", img}, "past the end"},
		{[]string{"io", "-c", "discard 3M 2M", img}, "past the end"},
		{[]string{"io", "-c", "read 9223372036854775807 1", img}, "past the end"},
		// read-only
		{[]string{"io", "-r", "-c", "write 0 4k", img}, "read-only"},
		{[]string{"io", "-r", "-c", "write -z -u 0 4k", img}, "read-only"},
		{[]string{"io", "-r", "-c", "discard 0 4k", img}, "read-only"},
		// a directory as image
		{[]string{"info", dir}, "is a directory"},
		{[]string{"map", dir}, "is a directory"},
		{[]string{"io", "-c", "read 0 1", dir}, "is a directory"},
		{[]string{"create", "-f", "raw", dir, "1M"}, "directory"},
		// unknown format name
		{[]string{"info", "-f", "qcow9", img}, `unknown format "qcow9"`},
		{[]string{"map", "-f", "qcow9", img}, `unknown format "qcow9"`},
		{[]string{"io", "-f", "qcow9", "-c", "read 0 1", img}, `unknown format "qcow9"`},
		{[]string{"create", "-f", "qcow9", filepath.Join(dir, "n.img"), "1M"}, `unknown format "qcow9"`},
		// bad options
		{[]string{"create", "-f", "raw", "-o", "bogus=1", filepath.Join(dir, "o.raw"), "1M"}, "bogus"},
		{[]string{"create", "-f", "raw", "-o", "preallocation=maybe", filepath.Join(dir, "o.raw"), "1M"}, "maybe"},
		{[]string{"create", "-f", "raw", filepath.Join(dir, "nosize.raw")}, "size"},
		{[]string{"io", "-t", "sometimes", "-c", "read 0 1", img}, "cache mode"},
		{[]string{"io", "-d", "perhaps", "-c", "read 0 1", img}, "perhaps"},
		{[]string{"info", "--output=xml", img}, "xml"},
		{[]string{"map", "--output=xml", img}, "xml"},
		// unknown flag, verb, io command, argument counts
		{[]string{"info", "--bogus", img}, "unknown flag: --bogus"},
		{[]string{"io", "-Z", "-c", "read 0 1", img}, "unknown shorthand flag"},
		{[]string{"frobnicate", img}, `unknown command "frobnicate"`},
		{[]string{"io", "-c", "frobnicate 0 1", img}, `unknown command "frobnicate"`},
		{[]string{"io", "-c", "write -X 0 1", img}, "unknown option -X"},
		{[]string{"io", "-c", "write 0", img}, "takes 2 arguments"},
		{[]string{"io", "-c", "read -P 300 0 1", img}, "not a valid pattern"},
		{[]string{"io", "-c", "write -u 0 1", img}, "-u needs -z"},
		{[]string{"info"}, "takes 1 argument"},
		{[]string{"info", img, img}, "takes 1 argument"},
	}
	for _, c := range cases {
		stdout, stderr, code := thinblk(t, c.args...)
		checkOneLineError(t, c.args, stdout, stderr, code, c.want)
	}
	// None of the failed commands may have changed the image.
	if b := stBlocks(t, img); b != 0 {
		t.Errorf("failed commands allocated %d blocks in the image", b)
	}
}

// TestWriteToReadOnlyFile runs thinblk as an unprivileged user (root
// ignores file modes) on a chmod 0444 image.
func TestWriteToReadOnlyFile(t *testing.T) {
	testutil.NeedRoot(t)
	bin := testutil.Thinblk(t)
	dir, err := os.MkdirTemp("", "thinblk-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "thinblk")
	testutil.MustRun(t, "cp", bin, exe)
	img := newFile(t, dir, "ro.raw", 1<<20)
	if err := os.Chmod(img, 0o444); err != nil {
		t.Fatal(err)
	}
	runAsNobody := func(args ...string) (string, string, int) {
		cmd := exec.Command(exe, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("running as nobody: %v", err)
		}
		return out.String(), errb.String(), code
	}
	args := []string{"io", "-f", "raw", "-c", "write 0 4k", img}
	stdout, stderr, code := runAsNobody(args...)
	checkOneLineError(t, args, stdout, stderr, code, "permission denied")
	// Reading it read-only works for the same user.
	args = []string{"io", "-r", "-f", "raw", "-c", "read -P 0 0 4k", img}
	if stdout, stderr, code := runAsNobody(args...); code != 0 {
		t.Fatalf("read-only read as nobody: exit %d\n%s%s", code, stdout, stderr)
	}
	args = []string{"info", img}
	if stdout, stderr, code := runAsNobody(args...); code != 0 {
		t.Fatalf("info as nobody: exit %d\n%s%s", code, stdout, stderr)
	}
}
