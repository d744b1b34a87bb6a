package tool

import (
	"io"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
)

// rebaseFixture: old.qcow2 <- top.qcow2, and new.qcow2 that differs from
// old in some ranges. ref.raw is what top reads.
func rebaseFixture(t *testing.T) (p func(string) string) {
	t.Helper()
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	p = func(n string) string { return filepath.Join(dir, n) }
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", p("old.qcow2"), "16M")
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 8M", "-c", "write -P 0x12 10M 2M", p("old.qcow2"))
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", p("new.qcow2"), "16M")
	// new equals old in 0-4M, differs in 4M-6M, lacks 6M-8M, has extra data at 14M.
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 4M", "-c", "write -P 0x44 4M 2M",
		"-c", "write -P 0x12 10M 2M", "-c", "write -P 0x55 14M 1M", p("new.qcow2"))
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "old.qcow2", "-F", "qcow2", p("top.qcow2"))
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x66 5M 512k", "-c", "write -z 14M 256k", p("top.qcow2"))
	testutil.MustRun(t, "qemu-img", "convert", "-O", "raw", p("top.qcow2"), p("ref.raw"))
	return p
}

// TestRebaseCopy checks the safe-mode copy: after it, top over the new
// backing file (switched by qemu-img rebase -u) reads what it read over the
// old one, and only differing ranges were written.
func TestRebaseCopy(t *testing.T) {
	for _, newBacking := range []string{"new.qcow2", ""} {
		p := rebaseFixture(t)
		top, err := image.Open(p("top.qcow2"), image.Options{Format: "qcow2"})
		if err != nil {
			t.Fatal(err)
		}
		before, _ := top.Info()
		err = rebaseCopy(io.Discard, top, p("top.qcow2"), RebaseOptions{Backing: newBacking, BackingFormat: "qcow2"})
		after, _ := top.Info()
		top.Close()
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"rebase", "-u", "-f", "qcow2", "-b", newBacking}
		if newBacking != "" {
			args = append(args, "-F", "qcow2")
		}
		testutil.MustRun(t, "qemu-img", append(args, p("top.qcow2"))...)
		checkSame(t, p("ref.raw"), p("top.qcow2"), "qcow2")
		grown := after.AllocatedBytes - before.AllocatedBytes
		if newBacking != "" && grown > 5<<20 {
			// 4M-6M differs (minus top's own 512k) and 6M-8M is missing:
			// about 3.5 MiB of data plus metadata.
			t.Errorf("rebase onto a similar backing file wrote %d bytes", grown)
		}
	}
}

func TestRebase(t *testing.T) {
	for _, tc := range []struct{ backing, format, want string }{
		{"new.qcow2", "qcow2", `backing file: new\.qcow2`},
		{"", "", ""},
	} {
		p := rebaseFixture(t)
		if err := Rebase(io.Discard, p("top.qcow2"), RebaseOptions{Backing: tc.backing, BackingFormat: tc.format}); err != nil {
			t.Fatal(err)
		}
		// checkSame runs qemu-img check too: the rewritten header is clean.
		checkSame(t, p("ref.raw"), p("top.qcow2"), "qcow2")
		out := testutil.MustRun(t, "qemu-img", "info", p("top.qcow2"))
		if tc.want != "" && !regexpMatch(tc.want, out) {
			t.Fatalf("backing file not changed:\n%s", out)
		}
		if tc.want != "" && !regexpMatch(`backing file format: qcow2`, out) {
			t.Fatalf("backing format not recorded:\n%s", out)
		}
		if tc.want == "" && regexpMatch(`backing file`, out) {
			t.Fatalf("backing file not removed:\n%s", out)
		}
	}
	// Unsafe mode only rewrites the header: top then reads through the new
	// backing file.
	p := rebaseFixture(t)
	if err := Rebase(io.Discard, p("top.qcow2"), RebaseOptions{Backing: "new.qcow2", BackingFormat: "qcow2", Unsafe: true}); err != nil {
		t.Fatal(err)
	}
	testutil.MustRun(t, "qemu-img", "check", p("top.qcow2"))
	if _, _, code := testutil.Run(t, "qemu-img", "compare", p("ref.raw"), p("top.qcow2")); code != 1 {
		t.Fatalf("unsafe rebase onto different data: qemu-img compare exit %d, want 1 (differ)", code)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
