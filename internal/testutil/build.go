package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  string
)

// Thinblk builds the thinblk binary once per test process (go build of
// ./cmd/thinblk, found from this source file's location in the module) into
// a temporary folder and returns its path. A failed build fails every test
// that asks. The binary outlives single tests by design; builds older than
// two hours are removed by later calls (in any process).
func Thinblk(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err.Error()
			return
		}
		parent := filepath.Join(os.TempDir(), "thinblk-testbin")
		if err := os.MkdirAll(parent, 0o755); err != nil {
			buildErr = err.Error()
			return
		}
		removeStale(parent, 2*time.Hour)
		dir, err := os.MkdirTemp(parent, "bin-")
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

// removeStale deletes the entries of dir last modified before age ago.
func removeStale(dir string, age time.Duration) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > age {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
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
