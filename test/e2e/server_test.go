package e2e

import (
	"errors"
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

// server is a thinblk server process (thinblk nbd or thinblk iscsi)
// listening on a loopback TCP port.
type server struct {
	t       *testing.T
	cmd     *exec.Cmd
	port    int
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error         // its exit status, valid after done
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer runs thinblk with argsFor(port), which must make it listen on
// 127.0.0.1:port, for a free port, and waits until the port accepts
// connections. Other tests on this machine pick ports too: a server that
// exits right after its port answered (someone else got the port first)
// is retried on another port, twice. The server is stopped by PID
// (SIGTERM, then SIGKILL after 10 s) when the test ends; its log is printed
// if the test failed.
func startServer(t *testing.T, argsFor func(port int) []string) *server {
	t.Helper()
	for try := 1; ; try++ {
		s, err := tryServer(t, freePort(t), argsFor)
		if err == nil {
			return s
		}
		if try == 3 {
			t.Fatal(err)
		}
		t.Logf("%v; trying another port", err)
	}
}

// tryServer starts one server on port; see startServer.
func tryServer(t *testing.T, port int, argsFor func(port int) []string) (*server, error) {
	t.Helper()
	args := argsFor(port)
	bin := testutil.Thinblk(t)
	logPath := filepath.Join(tempDir(t), "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logFile, "# thinblk %s\n", strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := startTracked(cmd); err != nil {
		logFile.Close()
		t.Fatalf("start thinblk %s: %v", strings.Join(args, " "), err)
	}
	s := &server{t: t, cmd: cmd, port: port, logPath: logPath, done: make(chan struct{})}
	go func() {
		s.waitErr = waitTracked(cmd)
		logFile.Close()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("server log %s:\n%s", logPath, tail(logPath, 40))
		}
	})

	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			// A server that could not bind exits at once; make sure the
			// port that answered is ours.
			select {
			case <-s.done:
				return nil, fmt.Errorf("thinblk %s exited (%v) although port %d answered:\n%s",
					strings.Join(args, " "), s.waitErr, port, tail(logPath, 20))
			case <-time.After(300 * time.Millisecond):
				return s, nil
			}
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("thinblk %s exited before listening (%v):\n%s", strings.Join(args, " "), s.waitErr, tail(logPath, 20))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("thinblk %s: port %d not listening after 15 s:\n%s", strings.Join(args, " "), port, tail(logPath, 20))
		}
	}
}

// stop sends SIGTERM and waits up to 10 s; it fails the test if the server
// had died before, did not stop, or exited with an error.
func (s *server) stop() {
	s.t.Helper()
	select {
	case <-s.done:
		s.t.Fatalf("server exited before it was stopped: %v\n%s", s.waitErr, tail(s.logPath, 20))
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.t.Fatalf("server did not stop within 10 s of SIGTERM")
	}
	var ee *exec.ExitError
	if s.waitErr != nil && !(errors.As(s.waitErr, &ee) && ee.ExitCode() == 0) {
		s.t.Errorf("server exit after SIGTERM: %v\n%s", s.waitErr, tail(s.logPath, 20))
	}
}

// kill stops the server by PID if it still runs: SIGTERM, then SIGKILL.
func (s *server) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}
