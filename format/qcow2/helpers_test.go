package qcow2

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
	_ "github.com/thinblk/thinblk/format/raw"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
)

// run runs a command and fails the test on a non-zero exit.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// openPath opens an image file through the image package (probing, backing
// chain), as the tools do.
func openPath(t testing.TB, name string, readOnly bool) block.Driver {
	t.Helper()
	d, err := image.Open(name, image.Options{ReadOnly: readOnly})
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	return d
}

// readAll reads the whole node.
func readAll(t testing.TB, d block.Driver) []byte {
	t.Helper()
	buf := make([]byte, d.Size())
	if err := d.Pread(buf, 0); err != nil {
		t.Fatalf("pread: %v", err)
	}
	return buf
}

// qemuRaw converts an image to raw with qemu-img and returns its bytes.
func qemuRaw(t testing.TB, name string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.raw")
	run(t, "qemu-img", "convert", "-O", "raw", name, out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// qemuCheck runs qemu-img check --output=json and returns the result.
func qemuCheck(t testing.TB, name string) map[string]any {
	t.Helper()
	out, _ := exec.Command("qemu-img", "check", "--output=json", name).Output()
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("qemu-img check %s: %v: %s", name, err, out)
	}
	return m
}

// mustBeClean fails unless qemu-img check finds no corruption and no leak.
func mustBeClean(t testing.TB, name string) {
	t.Helper()
	m := qemuCheck(t, name)
	if m["corruptions"] != nil || m["leaks"] != nil || m["check-errors"].(float64) != 0 {
		out, _ := exec.Command("qemu-img", "check", name).CombinedOutput()
		t.Fatalf("qemu-img check %s: %v\n%s", name, m, out)
	}
}

type mapEntry struct {
	Start, Length int64
	Depth         int
	Present       bool
	Zero, Data    bool
}

// qemuMap runs qemu-img map --output=json.
func qemuMap(t testing.TB, name string) []mapEntry {
	t.Helper()
	out := run(t, "qemu-img", "map", "--output=json", name)
	var m []mapEntry
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("qemu-img map: %v", err)
	}
	return m
}

// compareMaps checks that two maps agree on depth/zero/data for every byte.
func compareMaps(t testing.TB, got, want []mapEntry) {
	t.Helper()
	if d := mapDiff(got, want, true); d != "" {
		t.Fatal(d)
	}
}

// mapDiff returns where two maps first disagree on depth, data or zero
// ("" when they agree on every byte of want). Unless strict, zero is
// compared only where want has no data: for data extents qemu-img map's
// zero flag reflects whether the host file has blocks there (thinblk
// leaves holes in fresh clusters where QEMU fallocates), which differs
// between two programs' images of the same guest data.
func mapDiff(got, want []mapEntry, strict bool) string {
	at := func(m []mapEntry, off int64) (mapEntry, int64) {
		for _, e := range m {
			if off >= e.Start && off < e.Start+e.Length {
				return e, e.Start + e.Length
			}
		}
		return mapEntry{Depth: -1}, -1
	}
	var end int64
	if len(want) > 0 {
		end = want[len(want)-1].Start + want[len(want)-1].Length
	}
	for off := int64(0); off < end; {
		g, ge := at(got, off)
		w, we := at(want, off)
		if ge < 0 || we < 0 {
			return fmt.Sprintf("map: offset %d missing (got %v, want %v)", off, ge >= 0, we >= 0)
		}
		if g.Depth != w.Depth || g.Data != w.Data || ((strict || !w.Data) && g.Zero != w.Zero) {
			return fmt.Sprintf("map differs at offset %d: got depth=%d zero=%v data=%v, want depth=%d zero=%v data=%v",
				off, g.Depth, g.Zero, g.Data, w.Depth, w.Zero, w.Data)
		}
		off = min(ge, we)
	}
	return ""
}

// randBytes returns n pseudo-random bytes.
func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

func mustEqual(t testing.TB, got, want []byte, what string) {
	t.Helper()
	if !bytes.Equal(got, want) {
		for i := range got {
			if i >= len(want) || got[i] != want[i] {
				t.Fatalf("%s: differs at byte %d (len %d vs %d)", what, i, len(got), len(want))
			}
		}
		t.Fatalf("%s: lengths differ %d vs %d", what, len(got), len(want))
	}
}

var _ = testutil.NeedTool

// exec9 writes into img with qemu-io and kills it with SIGKILL, leaving a
// dirty lazy-refcounts image.
func exec9(t testing.TB, img string) {
	t.Helper()
	_ = exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 200k", "-c", "write -P 0x5b 1M 64k", "-c", "sigraise 9", img).Run()
}

func runCode(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// compareMapsOr is compareMaps reporting through fail, and comparing zero
// only where want has no data (see mapDiff).
func compareMapsOr(t testing.TB, got, want []mapEntry, fail func(string, ...any)) {
	t.Helper()
	if d := mapDiff(got, want, false); d != "" {
		fail("%s", d)
	}
}
