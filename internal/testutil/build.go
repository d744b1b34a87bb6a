package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  string
)

// Thinblk builds the thinblk binary once per test process (go build of
// ./cmd/thinblk, found from this source file's location in the module) into
// a temporary folder and returns its path. A failed build fails every test
// that asks. The folder is left for the OS to clean (it outlives single
// tests by design).
func Thinblk(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err.Error()
			return
		}
		dir, err := os.MkdirTemp("", "thinblk-test-bin-")
		if err != nil {
			buildErr = err.Error()
			return
		}
		out := filepath.Join(dir, "thinblk")
		cmd := exec.Command("go", "build", "-o", out, "./cmd/thinblk")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = "go build ./cmd/thinblk: " + err.Error() + "\n" + string(b)
			return
		}
		buildPath = out
	})
	if buildErr != "" {
		t.Fatal(buildErr)
	}
	return buildPath
}

// ModuleRoot returns the folder that holds go.mod for this module, found
// from this source file's location.
func ModuleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", os.ErrNotExist
	}
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
