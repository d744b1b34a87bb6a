package main

import (
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/thinblk/thinblk/internal/testutil"
)

// TestLockServeAndISCSI: thinblk serve and thinblk iscsi hold a served
// image's locks like thinblk nbd (and qemu-nbd): QEMU's tools cannot open
// it for writing, nor read it without -U.
func TestLockServeAndISCSI(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	bin := testutil.Thinblk(t)
	base, _ := lockImages(t)

	sock := filepath.Join(t.TempDir(), "s")
	srv := startServer(t, sock, bin, "serve", "--listen", "unix:"+sock, "--iscsi", "off", "--disk", "d="+base+",format=qcow2")
	_, stderr, code := testutil.Run(t, "qemu-img", "info", base)
	expectQemuLocked(t, "qemu-img info while served", stderr, code, `shared "write"`)
	_, stderr, code = testutil.Run(t, "qemu-io", "-f", "qcow2", "-c", "write 0 4k", base)
	expectQemuLocked(t, "qemu-io write while served", stderr, code, `"write"`)
	srv.stop()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	portal := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "iscsi", "--portal", portal, "--target", "iqn.2026-01.io.thinblk:lock", "--lun", "qcow2:"+base)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", portal)
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatalf("thinblk iscsi did not listen on %s", portal)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, stderr, code = testutil.Run(t, "qemu-img", "info", base)
	expectQemuLocked(t, "qemu-img info while served over iSCSI", stderr, code, `shared "write"`)
	_, stderr, code = testutil.Run(t, "qemu-io", "-f", "qcow2", "-c", "write 0 4k", base)
	expectQemuLocked(t, "qemu-io write while served over iSCSI", stderr, code, `"write"`)
}
