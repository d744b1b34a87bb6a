package tool

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// TestSnapshotVerbWithQemuImg: snapshots made by either program are
// listed alike by both, applied and deleted by the other, and the
// refusals read as qemu-img's.
func TestSnapshotVerbWithQemuImg(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	name := filepath.Join(t.TempDir(), "s.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", name, "4M")
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 1 0 1M", name)
	snapshot := func(o SnapshotOptions) string {
		t.Helper()
		var out bytes.Buffer
		if err := Snapshot(&out, name, o); err != nil {
			t.Fatalf("snapshot %+v: %v", o, err)
		}
		return out.String()
	}
	// Nothing to list: both print nothing.
	if got := snapshot(SnapshotOptions{}); got != "" {
		t.Fatalf("list of no snapshots: %q", got)
	}
	snapshot(SnapshotOptions{Create: "ours"})
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 2 0 1M", name)
	testutil.MustRun(t, "qemu-img", "snapshot", "-c", "theirs", name)
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 3 0 1M", name)
	if got, want := snapshot(SnapshotOptions{List: true}), testutil.MustRun(t, "qemu-img", "snapshot", "-l", name); got != want {
		t.Fatalf("snapshot -l:\n%s\nqemu-img:\n%s", got, want)
	}
	// qemu-img applies ours; we apply theirs (by ID 2).
	testutil.MustRun(t, "qemu-img", "snapshot", "-a", "ours", name)
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "read -P 1 0 1M", name)
	snapshot(SnapshotOptions{Apply: "2"})
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "read -P 2 0 1M", name)
	testutil.MustRun(t, "qemu-img", "check", name)
	// We delete theirs, qemu-img deletes ours.
	snapshot(SnapshotOptions{Delete: "theirs"})
	testutil.MustRun(t, "qemu-img", "snapshot", "-d", "ours", name)
	testutil.MustRun(t, "qemu-img", "check", name)
	if got := testutil.MustRun(t, "qemu-img", "snapshot", "-l", name); got != "" {
		t.Fatalf("snapshots left: %q", got)
	}
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "read -P 2 0 1M", name)

	for _, c := range []struct {
		o    SnapshotOptions
		want string
	}{
		{SnapshotOptions{Delete: "nosuch"}, "Could not delete snapshot 'nosuch': snapshot not found"},
		{SnapshotOptions{Apply: "nosuch"}, "Could not apply snapshot 'nosuch': snapshot not found"},
		{SnapshotOptions{List: true, Create: "x"}, "Cannot mix '-l', '-a', '-c', '-d'"},
	} {
		err := Snapshot(&bytes.Buffer{}, name, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("snapshot %+v: %v, want %q", c.o, err, c.want)
		}
	}
	raw := filepath.Join(t.TempDir(), "r.raw")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "raw", raw, "1M")
	if err := Snapshot(&bytes.Buffer{}, raw, SnapshotOptions{Create: "x"}); err == nil {
		t.Error("snapshot -c on a raw image succeeded")
	}
}
