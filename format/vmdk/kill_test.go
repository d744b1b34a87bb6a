package vmdk

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thinblk/thinblk/internal/formattest"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestKillThinblkIO writes rounds of data and zeros into a monolithicSparse
// disk with `thinblk io`, each round ended by a flush, kills it with
// SIGKILL at a random point, and checks the disk: qemu-img check finds no
// error, and every byte written by a flushed round (and not touched later)
// reads back.
func TestKillThinblkIO(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	bin := testutil.Thinblk(t)
	seed := testutil.Seed(t)
	for iter := range 3 {
		r := rand.New(rand.NewSource(seed + int64(iter)))
		dir := t.TempDir()
		name := filepath.Join(dir, "k.vmdk")
		const size = 16 << 20
		opts := []string{"zeroed_grain=off", "zeroed_grain=on"}[iter%2]
		formattest.QemuImg(t, "create", "-q", "-f", "vmdk", "-o", opts, name, fmt.Sprint(size))
		var cmds []string
		models := [][]byte{make([]byte, size)}
		cur := make([]byte, size)
		var touched [][3]int64 // off, end, round
		for round := 1; round <= 30; round++ {
			for range 6 {
				off := r.Int63n(size - 200000)
				n := 1 + r.Int63n(200000)
				if r.Intn(5) == 0 {
					cmds = append(cmds, fmt.Sprintf("write -z %d %d", off, n))
					clear(cur[off : off+n])
				} else {
					pat := byte(1 + r.Intn(250))
					cmds = append(cmds, fmt.Sprintf("write -P %d %d %d", pat, off, n))
					for i := off; i < off+n; i++ {
						cur[i] = pat
					}
				}
				touched = append(touched, [3]int64{off, off + n, int64(round)})
			}
			cmds = append(cmds, "flush", "length")
			models = append(models, append([]byte(nil), cur...))
		}
		args := []string{"io", "-f", "vmdk"}
		for _, c := range cmds {
			args = append(args, "-c", c)
		}
		cmd := exec.Command(bin, append(args, name)...)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 1 + r.Intn(25)
		extra := time.Duration(r.Intn(10)) * time.Millisecond
		sc := bufio.NewScanner(stdout)
		flushed, killed := 0, false
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == fmt.Sprint(size) || strings.HasPrefix(line, "16 MiB") {
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
		if out, err := exec.Command("qemu-img", "check", "-f", "vmdk", name).CombinedOutput(); err != nil {
			t.Fatalf("iteration %d (%s, killed after %d flushes): qemu-img check: %v\n%s", iter, opts, flushed, err, out)
		}
		raw := filepath.Join(dir, "k.raw")
		formattest.QemuImg(t, "convert", "-f", "vmdk", "-O", "raw", name, raw)
		got, err := os.ReadFile(raw)
		if err != nil {
			t.Fatal(err)
		}
		want := models[flushed]
		later := make([]bool, size)
		for _, tr := range touched {
			if tr[2] > int64(flushed) {
				for j := tr[0]; j < tr[1]; j++ {
					later[j] = true
				}
			}
		}
		for i := range int64(size) {
			if !later[i] && got[i] != want[i] {
				t.Fatalf("iteration %d (%s): byte %d is %#x, want %#x after %d flushed rounds", iter, opts, i, got[i], want[i], flushed)
			}
		}
		t.Logf("iteration %d (%s): killed after %d flushed rounds", iter, opts, flushed)
	}
}
