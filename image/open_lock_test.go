package image

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/protocol/file"
)

// TestOpenLocksLikeQemu: the locks Open takes on each file of a chain, seen
// from outside by qemu-io opening the files as raw: a writer is refused
// exactly where QEMU's own opener would refuse it (a format with metadata
// refuses write, raw does not unless asked, -U refuses nothing, backing
// files are held like the top).
func TestOpenLocksLikeQemu(t *testing.T) {
	testutil.NeedTool(t, "qemu-io")
	registerTestFormats()
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	top := filepath.Join(dir, "top.tfmt")
	writeFile(t, base, make([]byte, 8192))
	if err := Create(top, "tfmt", CreateOptions{Backing: "base.raw", BackingFormat: "raw"}); err != nil {
		t.Fatal(err)
	}
	// canWrite reports whether a qemu-io writer gets into name (it opens
	// the file read-write and leaves: the locks are checked at open).
	canWrite := func(name string) bool {
		t.Helper()
		_, stderr, code := testutil.Run(t, "qemu-io", "-f", "raw", "-c", "quit", name)
		if code != 0 && !strings.Contains(stderr, "lock") {
			t.Fatalf("qemu-io on %s failed for another reason: %s", name, stderr)
		}
		return code == 0
	}
	cases := []struct {
		what         string
		name         string
		o            Options
		top, backing bool // whether qemu-io can write top and base meanwhile
	}{
		{what: "raw read-only", name: base, o: Options{Format: "raw", ReadOnly: true}, top: true, backing: true},
		{what: "raw read-write", name: base, o: Options{Format: "raw"}, top: true, backing: true},
		{what: "raw convert source", name: base, o: Options{Format: "raw", ReadOnly: true, Unshare: file.PermWrite | file.PermResize}, top: true, backing: false},
		{what: "format read-only (given)", name: top, o: Options{Format: "tfmt", ReadOnly: true}, top: false, backing: true},
		{what: "format read-only (probed)", name: top, o: Options{ReadOnly: true}, top: false, backing: true},
		{what: "format convert source", name: top, o: Options{ReadOnly: true, Unshare: file.PermWrite | file.PermResize}, top: false, backing: false},
		{what: "format -U", name: top, o: Options{ReadOnly: true, ForceShare: true}, top: true, backing: true},
		{what: "format info", name: top, o: Options{ReadOnly: true, NoIO: true, NoBacking: true}, top: false, backing: true},
		{what: "locking off", name: top, o: Options{ReadOnly: true, Locking: "off"}, top: true, backing: true},
	}
	for _, c := range cases {
		d, err := Open(c.name, c.o)
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if got := canWrite(top); got != c.top {
			t.Errorf("%s: qemu-io writes the top: %v, want %v", c.what, got, c.top)
		}
		if got := canWrite(base); got != c.backing {
			t.Errorf("%s: qemu-io writes the base: %v, want %v", c.what, got, c.backing)
		}
		d.Close()
		if !canWrite(top) || !canWrite(base) {
			t.Fatalf("%s: locks remain after Close", c.what)
		}
	}
	if _, err := Open(top, Options{ForceShare: true}); err == nil || !strings.Contains(err.Error(), "force-share=on can only be used with read-only images") {
		t.Fatalf("-U on a writable open: %v", err)
	}
}

// TestOpenLockErrorNamesFile: a conflict is a *file.LockError naming the
// locked file (the backing file here) inside the open error of the top.
func TestOpenLockErrorNamesFile(t *testing.T) {
	testutil.NeedTool(t, "qemu-nbd")
	registerTestFormats()
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	top := filepath.Join(dir, "top.tfmt")
	writeFile(t, base, make([]byte, 8192))
	if err := Create(top, "tfmt", CreateOptions{Backing: "base.raw", BackingFormat: "raw"}); err != nil {
		t.Fatal(err)
	}
	// A writer of the base: qemu-nbd serving it read-write (100, 101, 203).
	sock := filepath.Join(dir, "s")
	srv := startQemuNbd(t, sock, "-f", "raw", base)
	defer srv()
	// Reading the top is fine (raw backing files refuse nothing)...
	d, err := Open(top, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	// ...a convert source refuses write to its raw backing file: refused.
	_, err = Open(top, Options{ReadOnly: true, Unshare: file.PermWrite | file.PermResize})
	var le *file.LockError
	if !errors.As(err, &le) || le.Name != base || le.Perm != file.PermWrite || !le.Shared || !errors.Is(err, file.ErrLocked) {
		t.Fatalf("open over a written base: %v, want a shared write LockError on %s", err, base)
	}
	if !strings.Contains(err.Error(), top) {
		t.Fatalf("error %q does not name the image opened", err)
	}
}

// startQemuNbd runs qemu-nbd -t -k sock args in the background until the
// returned stop is called (also at cleanup).
func startQemuNbd(t *testing.T, sock string, args ...string) (stop func()) {
	t.Helper()
	cmd := exec.Command("qemu-nbd", append([]string{"-t", "-k", sock}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop = func() {
		cmd.Process.Kill()
		<-done
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat(sock); err == nil {
			return stop
		}
		select {
		case <-done:
			t.Fatal("qemu-nbd exited before serving")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("qemu-nbd did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
