package e2e

import (
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The processes this test binary started (QEMU, servers) and the folder
// that holds every file it makes, so that an interrupt (SIGINT, SIGTERM)
// can stop the processes by PID and remove the files before the binary
// exits. t.Cleanup does the same on the normal path; dieWithParent covers
// a go test -timeout panic, which runs neither.
var (
	procsMu sync.Mutex
	procs   = map[*os.Process]bool{}

	// workDir holds the initramfs and, through tempDir, every test's images
	// and logs.
	workDir string
)

// staleAge is how old a thinblk-e2e-* folder left by a killed run must be
// before a later run removes it.
const staleAge = 2 * time.Hour

func TestMain(m *testing.M) {
	removeStaleWorkDirs()
	dir, err := os.MkdirTemp("", "thinblk-e2e-")
	if err != nil {
		panic(err)
	}
	workDir = dir
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		killTracked()
		os.RemoveAll(workDir)
		os.Stderr.WriteString("test/e2e: interrupted by " + s.String() + ": guests and servers killed, temporary files removed\n")
		os.Exit(2)
	}()
	code := m.Run()
	signal.Stop(sigs)
	killTracked()
	os.RemoveAll(workDir)
	os.Exit(code)
}

// removeStaleWorkDirs removes the work folders of runs that died without
// cleaning up (a go test -timeout panic), once they are staleAge old.
func removeStaleWorkDirs() {
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), "thinblk-e2e-*"))
	for _, d := range old {
		if st, err := os.Stat(d); err == nil && st.IsDir() && time.Since(st.ModTime()) > staleAge {
			os.RemoveAll(d)
		}
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// tempDir returns a new folder under workDir, removed when t ends.
func tempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp(workDir, unsafeName.ReplaceAllString(t.Name(), "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// startTracked starts cmd (made to die with this process where the OS
// allows) and records it for killTracked until it has been waited for.
func startTracked(cmd *exec.Cmd) error {
	dieWithParent(cmd)
	procsMu.Lock()
	defer procsMu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	procs[cmd.Process] = true
	return nil
}

// waitTracked waits for a command started by startTracked and forgets it.
func waitTracked(cmd *exec.Cmd) error {
	err := cmd.Wait()
	procsMu.Lock()
	delete(procs, cmd.Process)
	procsMu.Unlock()
	return err
}

// killTracked sends SIGKILL to every recorded process.
func killTracked() {
	procsMu.Lock()
	defer procsMu.Unlock()
	for p := range procs {
		_ = p.Kill()
	}
}
