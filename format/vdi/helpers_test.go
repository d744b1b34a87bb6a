package vdi

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
func compareWithQemu(t *testing.T, name string, unit int64) {
	t.Helper()
	rawName := filepath.Join(t.TempDir(), "ref.raw")
	formattest.QemuImg(t, "convert", "-f", "vdi", "-O", "raw", name, rawName)
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
	wantMap := formattest.QemuMap(t, name, "vdi", d.Size(), unit)
	gotMap := formattest.OurMap(t, d, unit)
	if strings.Join(gotMap, " ") != strings.Join(wantMap, " ") {
		t.Fatalf("map differs at %d-byte units:\n ours: %v\nqemu: %v", unit, gotMap, wantMap)
	}
}
