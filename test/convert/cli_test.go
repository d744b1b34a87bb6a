// Package convert_test runs the copy verbs through the thinblk binary:
// flag wiring, exit codes and output shapes that scripts (and
// /work/shared/bench/peers.sh) rely on.
package convert_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/internal/workload"
)

func TestCLI(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	tb := testutil.Thinblk(t)
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	if err := workload.Create(p("w.raw"), workload.Spec{Size: 32 << 20, Data: 4 << 20, Zero: 1 << 20, Seed: 11}); err != nil {
		t.Fatal(err)
	}
	run := func(wantCode int, args ...string) string {
		t.Helper()
		out, errOut, code := testutil.Run(t, tb, args...)
		if code != wantCode {
			t.Fatalf("thinblk %v: exit %d, want %d; stderr %q", args, code, wantCode, errOut)
		}
		if strings.Contains(errOut, "goroutine") || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Fatalf("thinblk %v: stderr is not one line: %q", args, errOut)
		}
		return out
	}
	// The shapes peers.sh uses.
	run(0, "convert", "-f", "raw", "-O", "qcow2", p("w.raw"), p("w.qcow2"))
	run(0, "convert", "-f", "qcow2", "-O", "raw", p("w.qcow2"), p("back.raw"))
	testutil.MustRun(t, "qemu-img", "check", p("w.qcow2"))
	if out := run(0, "compare", p("w.raw"), p("back.raw")); out != "Images are identical.\n" {
		t.Fatalf("compare: %q", out)
	}
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "raw", p("other.raw"), "32M")
	if out := run(1, "compare", "-f", "raw", "-F", "raw", p("w.raw"), p("other.raw")); !strings.HasPrefix(out, "Content mismatch at offset ") {
		t.Fatalf("compare of different images: %q", out)
	}
	run(2, "compare", p("w.raw"), p("missing.raw"))

	// -p prints qemu-img's progress lines; --stats a summary.
	out := run(0, "convert", "-p", "--stats", "-O", "raw", p("w.qcow2"), p("p.raw"))
	if !strings.Contains(out, "(100.00/100%)") || !strings.Contains(out, ", skipped ") {
		t.Fatalf("convert -p --stats: %q", out)
	}

	var m map[string]int64
	if err := json.Unmarshal([]byte(run(0, "measure", "--output=json", "-O", "qcow2", p("w.raw"))), &m); err != nil {
		t.Fatal(err)
	}
	if m["required"] <= 4<<20 || m["fully-allocated"] <= 32<<20 {
		t.Fatalf("measure: %v", m)
	}
	run(0, "dd", "-f", "raw", "bs=1M", "skip=2", "count=4", "if="+p("w.raw"), "of="+p("dd.raw"))
	run(0, "sparsify", "-q", "--in-place", p("p.raw"))
	run(0, "compare", p("w.raw"), p("p.raw"))

	// Usage mistakes: one line, exit 1.
	run(1, "convert", p("w.raw"))
	run(1, "convert", "--target-is-zero", p("w.raw"), p("x.raw"))
	run(1, "convert", "-m", "0", p("w.raw"), p("x.raw"))
	run(1, "dd", "if="+p("w.raw"))
	run(1, "measure")
	run(1, "commit", p("w.raw"))
	run(1, "rebase", p("w.qcow2"))
}
