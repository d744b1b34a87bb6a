package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the environment says CI=true.
func InCI() bool { return os.Getenv("CI") == "true" }

// skipOrFail skips t, or fails it when running under CI=true.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}

// NeedTool skips t when any of the named programs is not on PATH, or fails it
// when CI=true.
func NeedTool(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			skipOrFail(t, "peer tool %q not found: %v", n, err)
		}
	}
}

// NeedRoot skips t unless it runs as root (loop devices, tgtd), or fails it
// when CI=true.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root (euid %d)", os.Geteuid())
	}
}
