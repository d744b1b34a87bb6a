package testutil

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RunTimeout bounds one Run call; a command still running then is killed and
// the test fails.
var RunTimeout = 5 * time.Minute

// Run runs the program name with args and returns its stdout, stderr and exit
// code. A program that cannot be started (not found, not executable) or that
// runs longer than RunTimeout fails the test; a non-zero exit does not.
func Run(t testing.TB, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return RunIn(t, "", name, args...)
}

// RunIn is Run with the working directory set to dir ("" = the current one).
func RunIn(t testing.TB, dir, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(RunTimeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s %s: still running after %v, killed", name, strings.Join(args, " "), RunTimeout)
	}
	code = 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s: %v", name, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// MustRun runs a command and fails the test unless it exits 0. It returns
// stdout.
func MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, errs, code := Run(t, name, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), code, out, errs)
	}
	return out
}
