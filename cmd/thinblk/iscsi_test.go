package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thinblk/thinblk/internal/testutil"
)

// TestISCSIVerb starts `thinblk iscsi` as a user would, reads the LUN with
// libiscsi's iscsi-inq, and stops it with SIGTERM.
func TestISCSIVerb(t *testing.T) {
	testutil.NeedTool(t, "iscsi-readcapacity16")
	bin := testutil.Thinblk(t)
	img := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 8<<20); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	portal := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "iscsi", "--portal", portal, "--target", "iqn.2026-01.io.thinblk:cli",
		"--lun", "raw:"+img, "--discard", "unmap", "--lbprz", "--block-size", "4096")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
	}()
	url := fmt.Sprintf("iscsi://%s/iqn.2026-01.io.thinblk:cli/0", portal)
	var out []byte
	for i := 0; ; i++ {
		out, err = exec.Command("iscsi-readcapacity16", url).CombinedOutput()
		if err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("iscsi-readcapacity16: %v\n%s\nserver: %s", err, out, stderr.String())
	}
	for _, want := range []string{"LOGICAL BLOCK LENGTH IN BYTES:4096", "LBPME:1 LBPRZ:1", "RETURNED LOGICAL BLOCK ADDRESS:2047"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("thinblk iscsi after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("thinblk iscsi did not stop on SIGTERM")
	}
}

func TestISCSIVerbErrors(t *testing.T) {
	bin := testutil.Thinblk(t)
	img := filepath.Join(t.TempDir(), "disk.raw")
	os.WriteFile(img, make([]byte, 1<<20), 0o644)
	for _, args := range [][]string{
		{"iscsi"},
		{"iscsi", "--lun", img, "--discard", "bogus"},
		{"iscsi", "--lun", img, "--block-size", "1000"},
		{"iscsi", "--lun", filepath.Join(t.TempDir(), "missing.raw")},
		{"iscsi", "--lun", img, "--chap-user", "u"},
		{"iscsi", "--lun", img, "--portal", "256.0.0.1:1"},
	} {
		stdout, stderr, code := testutil.Run(t, bin, args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], "thinblk: ") ||
			strings.Contains(stderr, "goroutine") || stdout != "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}
