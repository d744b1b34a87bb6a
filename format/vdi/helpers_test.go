package vdi

import (
	"strings"
	"testing"

	"github.com/thinblk/thinblk/internal/formattest"
)

// compareWithQemu opens name with thinblk (probing) and checks content and
// map against qemu-img's at unit granularity.
func compareWithQemu(t *testing.T, name string, unit int64) {
	t.Helper()
	d, _ := formattest.OpenSameAsQemu(t, name, "vdi")
	wantMap := formattest.QemuMap(t, name, "vdi", d.Size(), unit)
	gotMap := formattest.OurMap(t, d, unit)
	if strings.Join(gotMap, " ") != strings.Join(wantMap, " ") {
		t.Fatalf("map differs at %d-byte units:\n ours: %v\nqemu: %v", unit, gotMap, wantMap)
	}
}
