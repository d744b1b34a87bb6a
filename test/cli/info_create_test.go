package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

func TestCreateLikeQemuImg(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	for _, c := range []struct {
		size string
		opts []string
		want int64
	}{
		{"0", nil, 0},
		{"1M", nil, 1 << 20},
		{"1.5M", nil, 3 << 19},
		{"2G", nil, 2 << 30},
		{"4096", []string{"-o", "preallocation=falloc"}, 4096},
		{"1M", []string{"-o", "preallocation=full"}, 1 << 20},
	} {
		q := filepath.Join(dir, "q.raw")
		tb := filepath.Join(dir, "t.raw")
		os.Remove(q)
		os.Remove(tb)
		qout := testutil.MustRun(t, "qemu-img", append(append([]string{"create", "-f", "raw"}, c.opts...), q, c.size)...)
		tout := mustThinblk(t, append(append([]string{"create", "-f", "raw"}, c.opts...), tb, c.size)...)
		if strings.ReplaceAll(qout, q, "X") != strings.ReplaceAll(tout, tb, "X") {
			t.Errorf("create %s %v: qemu-img says %q, thinblk %q", c.size, c.opts, qout, tout)
		}
		st, err := os.Stat(tb)
		if err != nil || st.Size() != c.want {
			t.Errorf("create %s: size %v, %v; want %d", c.size, st.Size(), err, c.want)
		}
		prealloc := len(c.opts) > 0
		if blocks := stBlocks(t, tb); prealloc != (blocks*512 >= c.want && c.want > 0) {
			t.Errorf("create %s %v: %d blocks allocated", c.size, c.opts, blocks)
		}
		if prealloc {
			// Preallocated or not, the content is zeros.
			mustThinblk(t, "io", "-r", "-f", "raw", "-c", "read -P 0 0 "+c.size, tb)
		}
	}
	if out := mustThinblk(t, "create", "-q", "-f", "raw", filepath.Join(dir, "quiet.raw"), "1M"); out != "" {
		t.Errorf("create -q printed %q", out)
	}
	// An overlay without a size takes its backing file's, and says so.
	newFile(t, dir, "base.raw", 3<<20)
	out := mustThinblk(t, "create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", filepath.Join(dir, "top.qcow2"))
	if want := "fmt=qcow2 size=3145728 backing_file=base.raw backing_fmt=raw"; !strings.Contains(out, want) {
		t.Errorf("create overlay printed %q, want it to contain %q", out, want)
	}
	testutil.MustRun(t, "qemu-img", "check", filepath.Join(dir, "top.qcow2"))
	if out := testutil.MustRun(t, "qemu-img", "info", filepath.Join(dir, "top.qcow2")); !strings.Contains(out, "backing file: base.raw") {
		t.Errorf("qemu-img info of thinblk's overlay:\n%s", out)
	}
}

func TestInfoMatchesQemuImg(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	img := newFile(t, dir, "i.raw", 64<<20)
	writeAt(t, img, make([]byte, 3<<20), 10<<20)
	writeAt(t, img, []byte{1}, 40<<20)

	var q, tb map[string]any
	if err := json.Unmarshal([]byte(testutil.MustRun(t, "qemu-img", "info", "--output=json", img)), &q); err != nil {
		t.Fatal(err)
	}
	tout := mustThinblk(t, "info", "--output=json", img)
	if err := json.Unmarshal([]byte(tout), &tb); err != nil {
		t.Fatalf("thinblk info JSON: %v\n%s", err, tout)
	}
	for _, k := range []string{"virtual-size", "filename", "format", "actual-size", "dirty-flag"} {
		if q[k] != tb[k] {
			t.Errorf("info %q: qemu-img %v, thinblk %v", k, q[k], tb[k])
		}
	}
	if hw, _ := tb["highest-allocated-offset"].(float64); int64(hw) != 40<<20+4096 {
		t.Errorf("highest-allocated-offset %v, want %d", tb["highest-allocated-offset"], 40<<20+4096)
	}

	// Human output: the lines qemu-img prints, in its order.
	qh := testutil.MustRun(t, "qemu-img", "info", img)
	th := mustThinblk(t, "info", img)
	var qlines, tlines []string
	for _, l := range strings.Split(qh, "\n") {
		if l != "" {
			qlines = append(qlines, l)
		}
	}
	for _, l := range strings.Split(th, "\n") {
		if l != "" && !strings.HasPrefix(l, "highest allocated offset:") {
			tlines = append(tlines, l)
		}
	}
	if strings.Join(qlines, "\n") != strings.Join(tlines, "\n") {
		t.Errorf("human info:\nqemu-img:\n%s\nthinblk:\n%s", qh, th)
	}

	// --backing-chain on a raw image is a one-element array.
	var chain []map[string]any
	if err := json.Unmarshal([]byte(mustThinblk(t, "info", "--output=json", "--backing-chain", img)), &chain); err != nil || len(chain) != 1 {
		t.Errorf("--backing-chain: %v, %d entries", err, len(chain))
	}
}
