package vdi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
)

// qemuImg runs qemu-img and fails the test on a non-zero exit.
func qemuImg(t *testing.T, args ...string) string {
	t.Helper()
	testutil.NeedTool(t, "qemu-img")
	return testutil.MustRun(t, "qemu-img", args...)
}

// qemuIO runs qemu-io commands on an image of format f.
func qemuIO(t *testing.T, f, name string, cmds ...string) {
	t.Helper()
	testutil.NeedTool(t, "qemu-io")
	args := []string{"-f", f}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	testutil.MustRun(t, "qemu-io", append(args, name)...)
}

// mapRun is one run of qemu-img map --output=json, or of ours.
type mapRun struct {
	Start   int64 `json:"start"`
	Length  int64 `json:"length"`
	Depth   int   `json:"depth"`
	Present bool  `json:"present"`
	Zero    bool  `json:"zero"`
	Data    bool  `json:"data"`
}

// class names what a byte is in a map: "data", "zero" (present, reads
// zero), "hole" (not present anywhere), with the depth of present runs.
func (r mapRun) class() string {
	switch {
	case r.Data:
		return fmt.Sprintf("data@%d", r.Depth)
	case r.Present:
		return fmt.Sprintf("zero@%d", r.Depth)
	default:
		return "hole"
	}
}

// qemuMap returns qemu-img map's runs as classes per unit bytes.
func qemuMap(t *testing.T, name, format string, size, unit int64) []string {
	t.Helper()
	out := qemuImg(t, "map", "--output=json", "-f", format, name)
	var runs []mapRun
	if err := json.Unmarshal([]byte(out), &runs); err != nil {
		t.Fatalf("qemu-img map: %v\n%s", err, out)
	}
	return classes(t, runs, size, unit)
}

// ourMap walks block.ChainStatus over d and returns classes per unit.
func ourMap(t *testing.T, d block.Driver, unit int64) []string {
	t.Helper()
	var runs []mapRun
	for off := int64(0); off < d.Size(); {
		e, err := block.ChainStatus(d, off, d.Size()-off, nil)
		if err != nil {
			t.Fatalf("ChainStatus at %d: %v", off, err)
		}
		if e.Off != off || e.Len <= 0 {
			t.Fatalf("ChainStatus at %d returned run %d+%d", off, e.Off, e.Len)
		}
		runs = append(runs, mapRun{Start: e.Off, Length: e.Len, Depth: e.Depth,
			Present: e.Status.Present(), Zero: e.Status&block.Zero != 0, Data: e.Status&block.Data != 0})
		off = e.End()
	}
	return classes(t, runs, d.Size(), unit)
}

func classes(t *testing.T, runs []mapRun, size, unit int64) []string {
	t.Helper()
	out := make([]string, (size+unit-1)/unit)
	for _, r := range runs {
		for o := r.Start; o < r.Start+r.Length; o += unit {
			i := o / unit
			if i >= int64(len(out)) {
				t.Fatalf("map run %+v past the size %d", r, size)
			}
			c := r.class()
			if out[i] != "" && out[i] != c {
				c = out[i] + "+" + c // a unit split between classes
			}
			out[i] = c
		}
	}
	return out
}

// compareWithQemu opens name with thinblk (probing) and checks content and
// map against qemu-img's at unit granularity.
func compareWithQemu(t *testing.T, name string, unit int64) {
	t.Helper()
	rawName := filepath.Join(t.TempDir(), "ref.raw")
	qemuImg(t, "convert", "-f", "vdi", "-O", "raw", name, rawName)
	want, err := os.ReadFile(rawName)
	if err != nil {
		t.Fatal(err)
	}
	d, err := image.Open(name, image.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer d.Close()
	if info, err := d.Info(); err != nil || info.Format != "vdi" {
		t.Fatalf("Info = %+v, %v; want format vdi", info, err)
	}
	if d.Size() != int64(len(want)) {
		t.Fatalf("size %d, qemu-img says %d", d.Size(), len(want))
	}
	got := make([]byte, len(want))
	if err := d.Pread(got, 0); err != nil {
		t.Fatalf("pread: %v", err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for got[i] == want[i] {
			i++
		}
		t.Fatalf("content differs from qemu-img convert first at byte %d: %#x, want %#x", i, got[i], want[i])
	}
	wantMap := qemuMap(t, name, "vdi", d.Size(), unit)
	gotMap := ourMap(t, d, unit)
	if strings.Join(gotMap, " ") != strings.Join(wantMap, " ") {
		t.Fatalf("map differs at %d-byte units:\n ours: %v\nqemu: %v", unit, gotMap, wantMap)
	}
}
