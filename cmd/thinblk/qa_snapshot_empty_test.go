package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// TestSnapshotEmptyName: "" is a snapshot name for qemu-img snapshot
// (-c "" creates a snapshot without a name, -a "" and -d "" find it).
// thinblk used to take -c "" for no flag at all: it listed the snapshots
// and exited 0 without creating one.
func TestSnapshotEmptyName(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	bin := testutil.Thinblk(t)
	img := filepath.Join(t.TempDir(), "e.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", img, "1M")
	info := func() string { return testutil.MustRun(t, "qemu-img", "info", "--output=json", img) }
	if _, stderr, code := testutil.Run(t, bin, "snapshot", "-a", "", img); code != 1 {
		t.Errorf(`snapshot -a "" without such a snapshot: exit %d (%s), want 1 as qemu-img`, code, stderr)
	}
	if _, stderr, code := testutil.Run(t, bin, "snapshot", "-c", "", img); code != 0 {
		t.Fatalf(`snapshot -c "": exit %d: %s`, code, stderr)
	}
	if out := info(); !strings.Contains(out, `"id": "1"`) || !strings.Contains(out, `"name": ""`) {
		t.Fatalf(`snapshot -c "" created no snapshot without a name; qemu-img info says:\n%s`, out)
	}
	if _, stderr, code := testutil.Run(t, bin, "snapshot", "-a", "", img); code != 0 {
		t.Errorf(`snapshot -a "": exit %d: %s`, code, stderr)
	}
	if _, stderr, code := testutil.Run(t, bin, "snapshot", "-d", "", img); code != 0 {
		t.Fatalf(`snapshot -d "": exit %d: %s`, code, stderr)
	}
	if strings.Contains(info(), `"snapshots"`) {
		t.Errorf(`snapshot -d "" left the snapshot`)
	}
	if _, _, code := testutil.Run(t, bin, "snapshot", "-l", "-c", "", img); code != 1 {
		t.Errorf(`snapshot -l -c "": exit %d, want 1 (Cannot mix)`, code)
	}
}
