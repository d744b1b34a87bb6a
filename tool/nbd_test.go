package tool_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/thinblk/thinblk/format/qcow2"
	_ "github.com/thinblk/thinblk/format/raw"
	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/tool"
)

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if ok() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func isSocket(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}

// TestNBDVerbShutdownFlushes: `thinblk nbd -t` (peers.sh's command line)
// serves a qcow2 image; after writes and SIGTERM it exits 0, removes its
// socket and pid file, and the image is consistent and holds the data.
func TestNBDVerbShutdownFlushes(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	bin := testutil.Thinblk(t)
	dir := t.TempDir()
	img, sock, pid := filepath.Join(dir, "d.qcow2"), filepath.Join(dir, "s"), filepath.Join(dir, "pid")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", img, "64M")
	cmd := exec.Command(bin, "nbd", "-t", "-f", "qcow2", "-k", sock, "--pid-file", pid, img)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "socket", func() bool { return isSocket(sock) })
	uri := "nbd+unix:///?socket=" + sock
	testutil.MustRun(t, "qemu-io", "-f", "raw", "-c", "write -P 0x77 1M 3M", "-c", "write -z 8M 1M", uri)
	if b, _ := os.ReadFile(pid); strings.TrimSpace(string(b)) != fmt.Sprint(cmd.Process.Pid) {
		t.Errorf("pid file holds %q, pid %d", b, cmd.Process.Pid)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("thinblk nbd after SIGTERM: %v\n%s", err, stderr.String())
	}
	if isSocket(sock) {
		t.Error("socket left behind")
	}
	if _, err := os.Stat(pid); err == nil {
		t.Error("pid file left behind")
	}
	testutil.MustRun(t, "qemu-img", "check", "-f", "qcow2", img)
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "read -P 0x77 1M 3M", "-c", "read -P 0 8M 1M", img)
	if !strings.Contains(stderr.String(), "client connected") {
		t.Errorf("no connection log line:\n%s", stderr.String())
	}
}

// TestNBDVerbOneShotAndFork: without -t the server exits when its client
// leaves; --fork returns once the server listens.
func TestNBDVerbOneShotAndFork(t *testing.T) {
	testutil.NeedTool(t, "nbdinfo")
	bin := testutil.Thinblk(t)
	dir := t.TempDir()
	img, sock, pid := filepath.Join(dir, "d.raw"), filepath.Join(dir, "s"), filepath.Join(dir, "pid")
	os.WriteFile(img, make([]byte, 1<<20), 0o644)
	out, err := exec.Command(bin, "nbd", "--fork", "-r", "-f", "raw", "-k", sock, "--pid-file", pid, img).CombinedOutput()
	if err != nil {
		t.Fatalf("--fork: %v\n%s", err, out)
	}
	if !isSocket(sock) {
		t.Fatal("--fork returned before the socket exists")
	}
	testutil.MustRun(t, "nbdinfo", "nbd+unix:///?socket="+sock)
	// The one client has left: the server goes away by itself.
	waitFor(t, "server exit", func() bool { return !isSocket(sock) })
}

// TestServeDefaultDisk: `thinblk serve` with no disks creates a thin 16 GiB
// qcow2 once, serves it with discard on, and keeps its data across runs.
func TestServeDefaultDisk(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io", "nbdinfo")
	dir := t.TempDir()
	iscsiOn := false
	start := func() (string, string, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		var out bytes.Buffer
		addrc := make(chan net.Addr, 1)
		done := make(chan error, 1)
		go func() {
			o := tool.ServeOptions{DataDir: dir, Listen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Ready: func(a net.Addr) { addrc <- a }}
			if iscsiOn {
				o.ISCSI = "127.0.0.1:0"
			}
			done <- tool.Serve(ctx, &out, o)
		}()
		var addr net.Addr
		select {
		case addr = <-addrc:
		case err := <-done:
			t.Fatalf("serve: %v", err)
		}
		return "nbd://" + addr.String() + "/disk0", out.String(), func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		}
	}
	uri, out, stop := start()
	for _, want := range []string{"Created", uri, "qemu-img info " + uri, "nbdinfo " + uri} {
		if !strings.Contains(out, want) {
			t.Errorf("serve output lacks %q:\n%s", want, out)
		}
	}
	info := testutil.MustRun(t, "nbdinfo", uri)
	if !strings.Contains(info, "export-size: 17179869184") || !strings.Contains(info, "can_trim: true") {
		t.Errorf("nbdinfo:\n%s", info)
	}
	testutil.MustRun(t, "qemu-io", "-f", "raw", "-c", "write -P 0x42 1G 1M", "-c", "discard 1G 512k", uri)
	stop()
	disk := filepath.Join(dir, "disk0.qcow2")
	if fi, err := os.Stat(disk); err != nil || fi.Size() > 64<<20 {
		t.Fatalf("default disk: %v (size %v): not thin", err, fi)
	}
	testutil.MustRun(t, "qemu-img", "check", "-f", "qcow2", disk)
	iscsiOn = true
	uri, out, stop = start()
	defer stop()
	if strings.Contains(out, "Created") {
		t.Errorf("second run created the disk again:\n%s", out)
	}
	testutil.MustRun(t, "qemu-io", "-f", "raw", "-c", "read -P 0 1G 512k", "-c", "read -P 0x42 1049088k 512k", uri)
	// The same disk on the iSCSI portal, as LUN 0 of its target.
	var iscsiURL string
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "iscsi://") && strings.HasSuffix(f, "/0") {
			iscsiURL = f
			break
		}
	}
	if iscsiURL == "" {
		t.Fatalf("no iSCSI URL in:\n%s", out)
	}
	if _, err := exec.LookPath("qemu-img"); err == nil {
		testutil.MustRun(t, "qemu-io", "-r", "-f", "raw", "-c", "read -P 0x42 1049088k 512k", iscsiURL)
	}
}

// TestNBDClientInVerbs: nbd+unix:// names open in the image verbs. `thinblk
// map` over a `thinblk nbd` export of a qcow2 chain prints what qemu-img
// map prints for the same URL, and `thinblk convert` from nbdkit's
// sparse-random makes an identical copy that is as sparse as the source.
func TestNBDClientInVerbs(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io", "nbdkit", "nbdinfo")
	bin := testutil.Thinblk(t)
	dir := t.TempDir()
	base, top, sock := filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "top.qcow2"), filepath.Join(dir, "s")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", base, "8M")
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 1 0 1M", "-c", "write -z 2M 512k", base)
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top)
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 2 512k 1M", "-c", "discard 0 64k", top)
	srv := exec.Command(bin, "nbd", "-t", "-r", "-f", "qcow2", "-k", sock, top)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }()
	waitFor(t, "socket", func() bool { return isSocket(sock) })
	uri := "nbd+unix:///?socket=" + sock
	got := testutil.MustRun(t, bin, "map", "--output=json", uri)
	want := testutil.MustRun(t, "qemu-img", "map", "--output=json", uri)
	if got != want {
		t.Errorf("thinblk map over NBD:\n%s\nqemu-img map:\n%s", got, want)
	}

	srSock := filepath.Join(dir, "sr")
	nk := exec.Command("nbdkit", "-f", "-r", "-U", srSock, "sparse-random", "256M", "seed=42")
	if err := nk.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { nk.Process.Kill(); nk.Wait() }()
	waitFor(t, "nbdkit socket", func() bool { return isSocket(srSock) })
	src := "nbd+unix:///?socket=" + srSock
	out := filepath.Join(dir, "out.qcow2")
	testutil.MustRun(t, bin, "convert", "-f", "raw", "-O", "qcow2", src, out)
	testutil.MustRun(t, "qemu-img", "compare", "-f", "raw", "-F", "qcow2", src, out)
	var data int64
	for _, line := range strings.Split(testutil.MustRun(t, "nbdinfo", "--map", src), "\n") {
		var off, n int64
		var typ int
		if c, _ := fmt.Sscan(line, &off, &n, &typ); c == 3 && typ&1 == 0 {
			data += n
		}
	}
	var st syscall.Stat_t
	syscall.Stat(out, &st)
	if alloc := st.Blocks * 512; alloc > data+4<<20 {
		t.Errorf("copy allocates %d bytes for %d bytes of source data", alloc, data)
	}
}
