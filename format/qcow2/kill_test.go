package qcow2

import (
	"bufio"
	"fmt"
	"math/rand"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thinblk/thinblk/internal/testutil"
)

// TestKillThinblkIO runs a long allocating sequence with `thinblk io`,
// kills it with SIGKILL at a random point, and checks the image: qemu-img
// check and thinblk check find no corruption (leaks are allowed), and every
// byte written before the last flush that completed (and not touched after
// it) reads back.
func TestKillThinblkIO(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	bin := testutil.Thinblk(t)
	seed := testutil.Seed(t)
	for iter := range 4 {
		r := rand.New(rand.NewSource(seed + int64(iter)))
		dir := t.TempDir()
		name := filepath.Join(dir, "k.qcow2")
		size := int64(24 << 20)
		cs := []string{"4096", "65536", "16384"}[iter%3]
		opts := "cluster_size=" + cs
		if iter == 2 {
			opts += ",extended_l2=on"
		}
		run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, name, fmt.Sprint(size))
		// Rounds of writes, each ended by a flush and a marker line.
		var cmds []string
		models := [][]byte{make([]byte, size)}
		touched := [][2]int64{} // ranges touched per round, flattened with round index
		var roundOf []int
		cur := make([]byte, size)
		for round := 1; round <= 40; round++ {
			for range 8 {
				off := r.Int63n(size - 300000)
				n := 1 + r.Int63n(300000)
				switch r.Intn(6) {
				case 0:
					cmds = append(cmds, fmt.Sprintf("write -z %d %d", off, n))
					clear(cur[off : off+n])
				default:
					pat := byte(1 + r.Intn(250))
					cmds = append(cmds, fmt.Sprintf("write -P %d %d %d", pat, off, n))
					for i := off; i < off+n; i++ {
						cur[i] = pat
					}
				}
				touched = append(touched, [2]int64{off, off + n})
				roundOf = append(roundOf, round)
			}
			cmds = append(cmds, "flush", "length")
			models = append(models, append([]byte(nil), cur...))
		}
		args := []string{"io", "-f", "qcow2"}
		for _, c := range cmds {
			args = append(args, "-c", c)
		}
		args = append(args, name)
		cmd := exec.Command(bin, args...)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 1 + r.Intn(30) // marker lines to wait for
		extra := time.Duration(r.Intn(20)) * time.Millisecond
		sc := bufio.NewScanner(stdout)
		flushed := 0
		killed := false
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == fmt.Sprint(size) || strings.HasPrefix(sc.Text(), "24 MiB") {
				flushed++
				if flushed == killAfter && !killed {
					time.Sleep(extra)
					_ = cmd.Process.Kill()
					killed = true
				}
			}
		}
		_ = cmd.Wait()
		if !killed {
			t.Logf("iteration %d: thinblk io finished before the kill", iter)
		}
		// The image must be consistent.
		m := qemuCheck(t, name)
		if m["corruptions"] != nil || m["check-errors"].(float64) != 0 {
			out, _ := exec.Command("qemu-img", "check", name).CombinedOutput()
			t.Fatalf("iteration %d (%s, killed after %d flushes): qemu-img check: %s", iter, opts, flushed, out)
		}
		if out, err := exec.Command(bin, "check", name).CombinedOutput(); err != nil {
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
				t.Fatalf("thinblk check: %v\n%s", err, out)
			}
		}
		// Bytes written by flushed rounds and not touched later read back.
		got := qemuRaw(t, name)
		want := models[flushed]
		later := make([]bool, size)
		for i, rg := range touched {
			if roundOf[i] > flushed {
				for j := rg[0]; j < rg[1]; j++ {
					later[j] = true
				}
			}
		}
		for i := int64(0); i < size; i++ {
			if !later[i] && got[i] != want[i] {
				t.Fatalf("iteration %d (%s): byte %d is %#x, want %#x after %d flushed rounds", iter, opts, i, got[i], want[i], flushed)
			}
		}
		t.Logf("iteration %d (%s): killed after %d flushed rounds", iter, opts, flushed)
	}
}
