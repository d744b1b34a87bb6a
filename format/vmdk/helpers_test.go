package vmdk

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/formattest"
)

// compareWithQemu opens name with thinblk (probing) and checks content and
// map against qemu-img's at unit granularity.
//
// With flatHoles, a unit qemu calls data may be zero (or partly zero) in
// ours: qemu reports all of a FLAT extent as data, we report the holes of
// the flat file as zeros (the content check proves they read as zeros).
func compareWithQemu(t *testing.T, name string, unit int64, flatHoles bool) {
	t.Helper()
	rawName := filepath.Join(t.TempDir(), "ref.raw")
	formattest.QemuImg(t, "convert", "-f", "vmdk", "-O", "raw", name, rawName)
	want, err := os.ReadFile(rawName)
	if err != nil {
		t.Fatal(err)
	}
	d, err := image.Open(name, image.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer d.Close()
	if info, err := d.Info(); err != nil || info.Format != "vmdk" {
		t.Fatalf("Info = %+v, %v; want format vmdk", info, err)
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
	// Unaligned small reads agree too.
	for _, r := range [][2]int64{{1, 7}, {65535, 3}, {int64(len(want)) - 5, 5}, {511, 1025}} {
		if r[0]+r[1] > int64(len(want)) {
			continue
		}
		b := make([]byte, r[1])
		if err := d.Pread(b, r[0]); err != nil || !bytes.Equal(b, want[r[0]:r[0]+r[1]]) {
			t.Fatalf("pread %d+%d: %v, content equal %v", r[0], r[1], err, bytes.Equal(b, want[r[0]:r[0]+r[1]]))
		}
	}
	wantMap := formattest.QemuMap(t, name, "vmdk", d.Size(), unit)
	gotMap := formattest.OurMap(t, d, unit)
	if flatHoles {
		for i := range gotMap {
			if wantMap[i] == "data@0" && strings.Contains(gotMap[i], "zero@0") && !strings.Contains(gotMap[i], "hole") {
				gotMap[i] = wantMap[i]
			}
		}
	}
	if strings.Join(gotMap, " ") != strings.Join(wantMap, " ") {
		t.Fatalf("map differs at %d-byte units:\n ours: %v\nqemu: %v", unit, gotMap, wantMap)
	}
}
