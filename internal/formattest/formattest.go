// Package formattest holds the helpers the format packages' tests share:
// running qemu-img and qemu-io, and comparing allocation maps with
// qemu-img map's at a format's grain.
package formattest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
)

// QemuImg runs qemu-img and fails the test on a non-zero exit.
func QemuImg(t *testing.T, args ...string) string {
	t.Helper()
	testutil.NeedTool(t, "qemu-img")
	return testutil.MustRun(t, "qemu-img", args...)
}

// QemuIO runs qemu-io commands on an image of format f.
func QemuIO(t *testing.T, f, name string, cmds ...string) {
	t.Helper()
	testutil.NeedTool(t, "qemu-io")
	args := []string{"-f", f}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	testutil.MustRun(t, "qemu-io", append(args, name)...)
}

// MapRun is one run of qemu-img map --output=json, or of ours.
type MapRun struct {
	Start   int64 `json:"start"`
	Length  int64 `json:"length"`
	Depth   int   `json:"depth"`
	Present bool  `json:"present"`
	Zero    bool  `json:"zero"`
	Data    bool  `json:"data"`
}

// Class names what a byte is in a map: "data", "zero" (present, reads
// zero), "hole" (not present anywhere), with the depth of present runs.
func (r MapRun) Class() string {
	switch {
	case r.Data:
		return fmt.Sprintf("data@%d", r.Depth)
	case r.Present:
		return fmt.Sprintf("zero@%d", r.Depth)
	default:
		return "hole"
	}
}

// QemuMap returns qemu-img map's runs as Classes per unit bytes.
func QemuMap(t *testing.T, name, format string, size, unit int64) []string {
	t.Helper()
	out := QemuImg(t, "map", "--output=json", "-f", format, name)
	var runs []MapRun
	if err := json.Unmarshal([]byte(out), &runs); err != nil {
		t.Fatalf("qemu-img map: %v\n%s", err, out)
	}
	return Classes(t, runs, size, unit)
}

// OurMap walks block.ChainStatus over d and returns Classes per unit.
func OurMap(t *testing.T, d block.Driver, unit int64) []string {
	t.Helper()
	var runs []MapRun
	for off := int64(0); off < d.Size(); {
		e, err := block.ChainStatus(d, off, d.Size()-off, nil)
		if err != nil {
			t.Fatalf("ChainStatus at %d: %v", off, err)
		}
		if e.Off != off || e.Len <= 0 {
			t.Fatalf("ChainStatus at %d returned run %d+%d", off, e.Off, e.Len)
		}
		runs = append(runs, MapRun{Start: e.Off, Length: e.Len, Depth: e.Depth,
			Present: e.Status.Present(), Zero: e.Status&block.Zero != 0, Data: e.Status&block.Data != 0})
		off = e.End()
	}
	return Classes(t, runs, d.Size(), unit)
}

// Classes spreads runs over units of unit bytes: one class per unit, "a+b"
// where a unit is split between classes.
func Classes(t *testing.T, runs []MapRun, size, unit int64) []string {
	t.Helper()
	out := make([]string, (size+unit-1)/unit)
	for _, r := range runs {
		for o := r.Start; o < r.Start+r.Length; o += unit {
			i := o / unit
			if i >= int64(len(out)) {
				t.Fatalf("map run %+v past the size %d", r, size)
			}
			c := r.Class()
			if out[i] != "" && out[i] != c {
				c = out[i] + "+" + c // a unit split between Classes
			}
			out[i] = c
		}
	}
	return out
}

// RunCmd runs a command and fails the test with its output on error.
func RunCmd(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}

// OpenImage opens name read-only with the given format ("" probes).
func OpenImage(t *testing.T, name, format string) block.Driver {
	t.Helper()
	d, err := image.Open(name, image.Options{Format: format, ReadOnly: true})
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// ReadAll reads the whole guest content of d.
func ReadAll(t *testing.T, d block.Driver) []byte {
	t.Helper()
	b := make([]byte, d.Size())
	for off := int64(0); off < d.Size(); {
		n := min(d.Size()-off, 1<<20+512) // odd chunk size: crosses blocks
		if err := d.Pread(b[off:off+n], off); err != nil {
			t.Fatalf("pread %d+%d: %v", off, n, err)
		}
		off += n
	}
	return b
}

// QemuRaw converts name (format fmt) to raw with qemu-img and returns the
// bytes.
func QemuRaw(t *testing.T, name, format string) []byte {
	t.Helper()
	testutil.NeedTool(t, "qemu-img")
	out := filepath.Join(t.TempDir(), "ref.raw")
	RunCmd(t, "qemu-img", "convert", "-f", format, "-O", "raw", name, out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// OpenSameAsQemu opens name read-only as format, checks that the node says
// so, and that its size and whole content are what qemu-img convert to raw
// gives. It returns the node (closed at cleanup) and those bytes.
func OpenSameAsQemu(t *testing.T, name, format string) (block.Driver, []byte) {
	t.Helper()
	want := QemuRaw(t, name, format)
	d := OpenImage(t, name, format)
	if info, err := d.Info(); err != nil || info.Format != format {
		t.Fatalf("Info = %+v, %v; want format %s", info, err, format)
	}
	if d.Size() != int64(len(want)) {
		t.Fatalf("size %d, qemu-img says %d", d.Size(), len(want))
	}
	if got := ReadAll(t, d); !bytes.Equal(got, want) {
		i := 0
		for got[i] == want[i] {
			i++
		}
		t.Fatalf("content differs from qemu-img convert first at byte %d: %#x, want %#x", i, got[i], want[i])
	}
	return d, want
}
