package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// vmConfig describes one guest boot.
type vmConfig struct {
	// Drive is QEMU's -drive value for the disk under test (id=d0), if any.
	Drive string
	// Devices are QEMU's -device values that attach d0.
	Devices []string
	// Params are the guest's e2e.* kernel parameters (see testdata/init.sh),
	// without the prefix.
	Params map[string]string
	// Timeout bounds the whole QEMU run: QEMU is killed when it expires.
	Timeout time.Duration
}

// consoleEvent is one thing the guest said over the console.
type consoleEvent struct {
	kind   string // STEP, KV, OUT (a finished captured output), FAIL, DONE, EXIT
	name   string // step, key or output name
	value  string // KV value, FAIL message, EXIT error
	output string // OUT: the captured lines
	rc     int    // OUT: the command's exit code
}

// capture is a guest command's output and exit code.
type capture struct {
	text string
	rc   int
}

// guest is a running VM. Its methods are called from the test goroutine
// only; a reader goroutine turns console lines into events.
type guest struct {
	t        *testing.T
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	events   chan consoleEvent
	readDone chan struct{}
	quit     chan struct{} // closed when the test stops reading events
	cancel   context.CancelFunc
	deadline time.Time
	logPath  string
	started  time.Time

	kv       map[string]string
	outputs  map[string]capture
	ended    bool
	lastStep string // the step last acknowledged: its repeats are ignored
}

// bootGuest starts QEMU (TCG, one vCPU) with the shared kernel and
// initramfs and cfg's disk, its serial console on QEMU's stdin/stdout. The
// console is logged to a file whose tail is printed if the test fails. QEMU
// is killed by PID when cfg.Timeout expires and when the test ends.
func bootGuest(t *testing.T, env guestEnv, cfg vmConfig) *guest {
	t.Helper()
	var params []string
	for k, v := range cfg.Params {
		params = append(params, "e2e."+k+"="+v)
	}
	sort.Strings(params)
	args := []string{
		"-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "512",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "stdio",
		"-kernel", env.kernel.Image, "-initrd", env.initrd,
		"-append", "console=ttyS0 panic=-1 quiet " + strings.Join(params, " "),
	}
	if cfg.Drive != "" {
		args = append(args, "-drive", cfg.Drive)
	}
	for _, d := range cfg.Devices {
		args = append(args, "-device", d)
	}
	// Stop before go test's own -timeout would panic past every cleanup.
	if d, ok := t.Deadline(); ok {
		if left := time.Until(d) - 20*time.Second; left < cfg.Timeout {
			if left < 30*time.Second {
				t.Fatalf("only %v left before go test's -timeout: not enough for a guest", time.Until(d).Round(time.Second))
			}
			cfg.Timeout = left
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	cmd := exec.CommandContext(ctx, env.qemu, args...)
	logPath := filepath.Join(tempDir(t), "console.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	fmt.Fprintf(logFile, "# %s %s\n", env.qemu, strings.Join(args, " "))
	if err := startTracked(cmd); err != nil {
		cancel()
		t.Fatalf("start %s: %v", env.qemu, err)
	}
	g := &guest{
		t: t, cmd: cmd, stdin: stdin, cancel: cancel,
		events:   make(chan consoleEvent, 64),
		readDone: make(chan struct{}),
		quit:     make(chan struct{}),
		deadline: time.Now().Add(cfg.Timeout),
		logPath:  logPath,
		started:  time.Now(),
		kv:       map[string]string{},
		outputs:  map[string]capture{},
	}
	go g.readConsole(stdout, logFile)
	t.Cleanup(func() {
		cancel() // kills QEMU if it still runs
		close(g.quit)
		<-g.readDone
		logFile.Close()
		if t.Failed() {
			t.Logf("guest console (last lines of %s):\n%s", logPath, tail(logPath, 60))
		}
	})
	return g
}

// readConsole logs every console line with the time since boot and sends
// the guest's @@ lines as events; when the console closes it waits for
// QEMU and sends EXIT.
func (g *guest) readConsole(stdout io.Reader, log io.Writer) {
	defer close(g.readDone)
	defer close(g.events)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var capName string
	var capLines []string
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		fmt.Fprintf(log, "%7.2f %s\n", time.Since(g.started).Seconds(), line)
		i := strings.Index(line, "@@")
		if i < 0 {
			if capName != "" {
				capLines = append(capLines, line)
			}
			continue
		}
		f := strings.SplitN(line[i+2:], " ", 3)
		ev := consoleEvent{kind: f[0]}
		switch {
		case ev.kind == "OUT" && len(f) >= 2:
			capName, capLines = f[1], nil
			continue
		case ev.kind == "RC" && len(f) == 3:
			ev.kind, ev.name = "OUT", f[1]
			ev.rc, _ = strconv.Atoi(strings.TrimSpace(f[2]))
			ev.output = strings.Join(capLines, "\n")
			capName, capLines = "", nil
		case ev.kind == "STEP" && len(f) >= 2:
			ev.name = f[1]
		case ev.kind == "KV" && len(f) == 3:
			ev.name, ev.value = f[1], f[2]
		case ev.kind == "FAIL":
			ev.value = strings.TrimPrefix(line[i+2:], "FAIL ")
		case ev.kind == "DONE":
		default:
			continue
		}
		g.send(ev)
	}
	err := waitTracked(g.cmd)
	msg := "exit status 0"
	if err != nil {
		msg = err.Error()
	}
	g.send(consoleEvent{kind: "EXIT", value: msg})
}

// send passes an event to the test, or drops it once the test has stopped
// reading (so the reader never blocks QEMU's exit).
func (g *guest) send(ev consoleEvent) {
	select {
	case g.events <- ev:
	case <-g.quit:
	}
}

// next returns the guest's next event, failing the test at the deadline.
func (g *guest) next() consoleEvent {
	g.t.Helper()
	select {
	case ev, ok := <-g.events:
		if !ok {
			g.t.Fatal("guest console closed twice")
		}
		switch ev.kind {
		case "KV":
			g.kv[ev.name] = ev.value
		case "OUT":
			g.outputs[ev.name] = capture{text: ev.output, rc: ev.rc}
		case "EXIT":
			g.ended = true
		}
		return ev
	case <-time.After(time.Until(g.deadline) + 5*time.Second):
		g.t.Fatalf("guest: nothing after %v", time.Since(g.started).Round(time.Second))
	}
	return consoleEvent{}
}

// waitStep waits until the guest reports step done (and is waiting for
// "go"). A guest failure, an unexpected step or the end of QEMU fails the
// test.
func (g *guest) waitStep(step string) {
	g.t.Helper()
	for {
		ev := g.next()
		switch ev.kind {
		case "STEP":
			if ev.name == g.lastStep {
				continue // the guest repeats a step until it reads "go"
			}
			if ev.name != step {
				g.t.Fatalf("guest reached step %q, want %q", ev.name, step)
			}
			g.lastStep = step
			g.t.Logf("guest step %s at %.1fs", step, time.Since(g.started).Seconds())
			return
		case "FAIL":
			g.t.Fatalf("guest failed before step %s: %s", step, ev.value)
		case "DONE", "EXIT":
			g.t.Fatalf("guest ended (%s %s) before step %s", ev.kind, ev.value, step)
		}
	}
}

// resume tells the guest to go on to its next step.
func (g *guest) resume() {
	g.t.Helper()
	if _, err := io.WriteString(g.stdin, "go\n"); err != nil {
		g.t.Fatalf("guest console: %v", err)
	}
}

// finish waits for the guest's DONE and for QEMU to exit cleanly.
func (g *guest) finish() {
	g.t.Helper()
	done := false
	for !g.ended {
		ev := g.next()
		switch ev.kind {
		case "DONE":
			done = true
		case "FAIL":
			g.t.Fatalf("guest failed: %s", ev.value)
		case "STEP":
			if ev.name != g.lastStep {
				g.t.Fatalf("guest reached unexpected step %q", ev.name)
			}
		case "EXIT":
			if !done {
				g.t.Fatalf("QEMU exited (%s) before the guest was done", ev.value)
			}
			if ev.value != "exit status 0" {
				g.t.Fatalf("QEMU: %s", ev.value)
			}
		}
	}
	g.t.Logf("guest done at %.1fs", time.Since(g.started).Seconds())
}

// output returns a captured guest command output, failing the test when
// the guest did not print it.
func (g *guest) output(name string) capture {
	g.t.Helper()
	c, ok := g.outputs[name]
	if !ok {
		g.t.Fatalf("guest printed no %q output", name)
	}
	return c
}

// value returns a guest KV value as an int64.
func (g *guest) value(key string) int64 {
	g.t.Helper()
	v, err := strconv.ParseInt(g.kv[key], 10, 64)
	if err != nil {
		g.t.Fatalf("guest value %s=%q: %v", key, g.kv[key], err)
	}
	return v
}

// tail returns the last n lines of a file.
func tail(name string, n int) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestGuestDeadline boots a guest that waits for a "go" that never comes
// and checks that QEMU is killed at its deadline, so a hung guest cannot
// hang the suite.
func TestGuestDeadline(t *testing.T) {
	env := needGuestTools(t)
	const timeout = 4 * time.Second
	// No disk: the guest's /init waits up to 30 s for /dev/vda, and QEMU
	// is killed first.
	g := bootGuest(t, env, vmConfig{Timeout: timeout})
	start := time.Now()
	for {
		ev := g.next()
		if ev.kind != "EXIT" {
			continue
		}
		if ev.value == "exit status 0" {
			t.Fatalf("QEMU exited cleanly; want it killed at its deadline")
		}
		if took := time.Since(start); took > timeout+10*time.Second {
			t.Fatalf("QEMU ended %v after boot, deadline was %v", took, timeout)
		}
		t.Logf("QEMU stopped at its deadline: %s", ev.value)
		break
	}
	if g.cmd.ProcessState == nil {
		t.Errorf("QEMU pid %d not reaped after its deadline", g.cmd.Process.Pid)
	}
}
