package vmdk

import (
	"bytes"
	"strings"
	"testing"

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
	d, want := formattest.OpenSameAsQemu(t, name, "vmdk")
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
