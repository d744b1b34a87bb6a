package testutil

import (
	"os/exec"
	"strings"
	"testing"
)

// LoopDevice attaches file to a free loop device (losetup -f --show) and
// returns the device path; the device is detached when the test ends. It
// needs root and losetup: without them the test is skipped (failed under
// CI=true). The device gets direct I/O off and discard support as the
// kernel's loop driver gives it (punching holes in file).
func LoopDevice(t testing.TB, file string) string {
	t.Helper()
	NeedRoot(t)
	NeedTool(t, "losetup")
	out, err := exec.Command("losetup", "-f", "--show", file).CombinedOutput()
	if err != nil {
		skipOrFail(t, "losetup -f --show %s: %v: %s", file, err, strings.TrimSpace(string(out)))
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if b, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, b)
		}
	})
	return dev
}
