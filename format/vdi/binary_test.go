package vdi

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/internal/formattest"
	"github.com/thinblk/thinblk/internal/testutil"
)

// TestThinblkBinary: static and dynamic images made by qemu-img convert
// with `thinblk convert -O raw` to content qemu-img compare calls
// identical, and `thinblk map --output=json` matches qemu-img map per
// block.
func TestThinblkBinary(t *testing.T) {
	tb := testutil.Thinblk(t)
	for _, static := range []string{"off", "on"} {
		t.Run("static="+static, func(t *testing.T) {
			dir := t.TempDir()
			name := filepath.Join(dir, "d.vdi")
			formattest.QemuImg(t, "create", "-f", "vdi", "-o", "static="+static, name, "6M")
			formattest.QemuIO(t, "vdi", name, "write -P 0xab 0 1M", "write -P 0xcd 3M 5k", "write -z 4M 1M", "write -P 0x13 5M 1M")
			raw := filepath.Join(dir, "out.raw")
			testutil.MustRun(t, tb, "convert", "-O", "raw", name, raw)
			formattest.QemuImg(t, "compare", "-f", "vdi", "-F", "raw", name, raw)
			var ours []formattest.MapRun
			out := testutil.MustRun(t, tb, "map", "--output=json", name)
			if err := json.Unmarshal([]byte(out), &ours); err != nil {
				t.Fatalf("thinblk map: %v\n%s", err, out)
			}
			got := formattest.Classes(t, ours, 6<<20, 1<<20)
			want := formattest.QemuMap(t, name, "vdi", 6<<20, 1<<20)
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("thinblk map differs from qemu-img map:\n ours: %v\nqemu: %v", got, want)
			}
		})
	}
}
