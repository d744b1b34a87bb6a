package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thinblk/thinblk/internal/testutil"
)

// Image locks between thinblk and QEMU's tools, as separate processes (a
// process never conflicts with itself, see protocol/file).

// server is a background process serving an image on a unix socket.
type server struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan error
}

// startServer runs name args in the background and waits until sock
// exists. It is stopped (SIGTERM, then waited for) at cleanup or by stop.
func startServer(t *testing.T, sock, name string, args ...string) *server {
	t.Helper()
	s := &server{cmd: exec.Command(name, args...), done: make(chan error, 1)}
	s.cmd.Stderr = &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(s.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return s
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("%s %s exited before serving: %v\n%s", name, strings.Join(args, " "), err, s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not create %s in time", name, sock)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop ends the server and waits for it; calling it again does nothing.
func (s *server) stop() {
	if s.cmd.ProcessState != nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// lockImages makes a qcow2 base (with data) and a qcow2 overlay on it in a
// fresh folder.
func lockImages(t *testing.T) (base, overlay string) {
	t.Helper()
	dir := t.TempDir()
	base = filepath.Join(dir, "base.qcow2")
	overlay = filepath.Join(dir, "top.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", base, "1M")
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 7 0 64k", base)
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", overlay)
	return base, overlay
}

// expectLocked checks a thinblk run failed with exit 1 and the one-line
// lock message for image (opened as opened).
func expectLocked(t *testing.T, what, stderr string, code int, opened, image, perm string) {
	t.Helper()
	want := "thinblk: Could not open '" + opened + "': Failed to get " + perm + " lock: Is another process using the image [" + image + "]?\n"
	if code != 1 || stderr != want {
		t.Fatalf("%s: exit %d, stderr %q; want exit 1, %q", what, code, stderr, want)
	}
}

// expectQemuLocked checks a QEMU tool failed on the lock.
func expectQemuLocked(t *testing.T, what, stderr string, code int, perm string) {
	t.Helper()
	if code == 0 || !strings.Contains(stderr, "Failed to get "+perm+" lock") || !strings.Contains(stderr, "Is another process using the image") {
		t.Fatalf("%s: exit %d, stderr %q; want a failure on the %s lock", what, code, stderr, perm)
	}
}

// TestLockQemuNbdWriterBlocksThinblk: qemu-nbd serves a qcow2 read-write;
// thinblk info and convert are refused unless -U.
func TestLockQemuNbdWriterBlocksThinblk(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io", "qemu-nbd")
	bin := testutil.Thinblk(t)
	base, _ := lockImages(t)
	sock := filepath.Join(t.TempDir(), "s")
	startServer(t, sock, "qemu-nbd", "-t", "-k", sock, "-f", "qcow2", base)

	_, stderr, code := testutil.Run(t, bin, "info", base)
	expectLocked(t, "info", stderr, code, base, base, `shared "write"`)
	out, stderr, code := testutil.Run(t, bin, "info", "-U", base)
	if code != 0 || !strings.Contains(out, "file format: qcow2") {
		t.Fatalf("info -U: exit %d, %q %q", code, out, stderr)
	}
	dst := filepath.Join(t.TempDir(), "copy.raw")
	_, stderr, code = testutil.Run(t, bin, "convert", "-O", "raw", base, dst)
	expectLocked(t, "convert", stderr, code, base, base, `shared "write"`)
	if _, stderr, code = testutil.Run(t, bin, "convert", "-U", "-O", "raw", base, dst); code != 0 {
		t.Fatalf("convert -U: exit %d: %s", code, stderr)
	}
	// A writer is refused on "write" (qemu-nbd refuses it as a qcow2 user).
	_, stderr, code = testutil.Run(t, bin, "io", "-c", "write 0 4k", base)
	expectLocked(t, "io write", stderr, code, base, base, `"write"`)
	// -U is for read-only opens only, in qemu's words.
	_, stderr, code = testutil.Run(t, bin, "io", "-U", "-c", "write 0 4k", base)
	if code != 1 || !strings.Contains(stderr, "force-share=on can only be used with read-only images") {
		t.Fatalf("io -U write: exit %d, %q", code, stderr)
	}
}

// TestLockThinblkNbdBlocksQemu: thinblk nbd serving read-write holds what
// qemu-nbd holds; QEMU's tools are refused; read-only serving lets
// qemu-img info in but not a writer.
func TestLockThinblkNbdBlocksQemu(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	bin := testutil.Thinblk(t)
	base, _ := lockImages(t)
	sock := filepath.Join(t.TempDir(), "s")
	srv := startServer(t, sock, bin, "nbd", "-t", "-k", sock, "-f", "qcow2", base)

	_, stderr, code := testutil.Run(t, "qemu-img", "info", base)
	expectQemuLocked(t, "qemu-img info", stderr, code, `shared "write"`)
	if out, stderr, code := testutil.Run(t, "qemu-img", "info", "-U", base); code != 0 || !strings.Contains(out, "file format: qcow2") {
		t.Fatalf("qemu-img info -U: exit %d, %q %q", code, out, stderr)
	}
	_, stderr, code = testutil.Run(t, "qemu-io", "-f", "qcow2", "-c", "write 0 4k", base)
	expectQemuLocked(t, "qemu-io write", stderr, code, `"write"`)
	_, stderr, code = testutil.Run(t, "qemu-img", "check", base)
	expectQemuLocked(t, "qemu-img check", stderr, code, `shared "write"`)
	srv.stop()
	if _, stderr, code := testutil.Run(t, "qemu-img", "check", base); code != 0 {
		t.Fatalf("qemu-img check after the server stopped: exit %d: %s", code, stderr)
	}

	// Read-only: readers are welcome, writers are not.
	sock2 := filepath.Join(t.TempDir(), "s")
	startServer(t, sock2, bin, "nbd", "-r", "-t", "-k", sock2, "-f", "qcow2", base)
	if _, stderr, code := testutil.Run(t, "qemu-img", "info", base); code != 0 {
		t.Fatalf("qemu-img info while served read-only: exit %d: %s", code, stderr)
	}
	_, stderr, code = testutil.Run(t, "qemu-io", "-f", "qcow2", "-c", "write 0 4k", base)
	expectQemuLocked(t, "qemu-io write while served read-only", stderr, code, `"write"`)
}

// TestLockTwoThinblkWriters: a second thinblk writer is refused while the
// first runs, and works once it has exited. The backing file of a served
// overlay cannot be written either.
func TestLockTwoThinblkWriters(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	bin := testutil.Thinblk(t)
	base, overlay := lockImages(t)
	sock := filepath.Join(t.TempDir(), "s")
	srv := startServer(t, sock, bin, "nbd", "-t", "-k", sock, overlay)

	_, stderr, code := testutil.Run(t, bin, "io", "-c", "write 0 4k", overlay)
	expectLocked(t, "second writer", stderr, code, overlay, overlay, `"write"`)
	sock2 := filepath.Join(t.TempDir(), "s2")
	cmd := exec.Command(bin, "nbd", "-t", "-k", sock2, overlay)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), `Failed to get "write" lock`) {
		t.Fatalf("second thinblk nbd: %v, %q; want the write lock refused", err, out)
	}
	// The base: held read-only under the overlay, refusing write.
	_, stderr, code = testutil.Run(t, bin, "io", "-c", "write 0 4k", base)
	expectLocked(t, "writing the base", stderr, code, base, base, `"write"`)
	_, stderr, code = testutil.Run(t, "qemu-io", "-f", "qcow2", "-c", "write 0 4k", base)
	expectQemuLocked(t, "qemu-io writing the base", stderr, code, `"write"`)
	// Reading the base is fine.
	if _, stderr, code := testutil.Run(t, bin, "io", "-r", "-c", "read -P 7 0 4k", base); code != 0 {
		t.Fatalf("reading the base: exit %d: %s", code, stderr)
	}

	srv.stop()
	if out, stderr, code := testutil.Run(t, bin, "io", "-c", "write -P 9 0 4k", overlay); code != 0 {
		t.Fatalf("writer after the first exited: exit %d: %s %s", code, out, stderr)
	}
	if _, stderr, code := testutil.Run(t, "qemu-io", "-f", "qcow2", "-c", "write 64k 4k", base); code != 0 {
		t.Fatalf("qemu-io writing the base after the server exited: exit %d: %s", code, stderr)
	}
}
