package tool

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"testing"

	_ "github.com/thinblk/thinblk/format/qcow2"
	_ "github.com/thinblk/thinblk/format/raw"
	"github.com/thinblk/thinblk/internal/testutil"
)

func checkCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return -1
}

// TestCheckExitCodes: a clean image exits 0, a dirty lazy-refcounts image
// left by a killed qemu-io has corruptions (2) until repaired with -r all,
// and a raw image has no check (63).
func TestCheckExitCodes(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	clean := filepath.Join(dir, "clean.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", clean, "4M")
	var out bytes.Buffer
	if err := Check(&out, clean, CheckOptions{}); err != nil {
		t.Fatalf("clean: %v\n%s", err, out.String())
	}
	dirty := filepath.Join(dir, "dirty.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", dirty, "4M")
	_ = exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 1 0 300k", "-c", "sigraise 9", dirty).Run()
	out.Reset()
	err := Check(&out, dirty, CheckOptions{Output: "json"})
	if checkCode(err) != 2 {
		t.Fatalf("dirty: code %d (%v), want 2\n%s", checkCode(err), err, out.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res["corruptions"] == nil {
		t.Fatalf("json: %v %v", err, out.String())
	}
	out.Reset()
	if err := Check(&out, dirty, CheckOptions{Repair: "all"}); err != nil {
		t.Fatalf("repair: %v\n%s", err, out.String())
	}
	if !bytes.Contains(out.Bytes(), []byte("were found and repaired")) {
		t.Fatalf("repair output does not report the repair:\n%s", out.String())
	}
	if o, err := exec.Command("qemu-img", "check", dirty).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img check after repair: %v\n%s", err, o)
	}
	raw := filepath.Join(dir, "r.raw")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "raw", raw, "1M")
	if c := checkCode(Check(&out, raw, CheckOptions{})); c != 63 {
		t.Fatalf("raw: code %d, want 63", c)
	}
	if c := checkCode(Check(&out, raw, CheckOptions{Repair: "all"})); c != 63 {
		t.Fatalf("raw -r all: code %d, want 63", c)
	}
}
