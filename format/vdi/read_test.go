package vdi

import (
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/internal/formattest"
)

func TestReadQemuImages(t *testing.T) {
	for _, static := range []string{"off", "on"} {
		t.Run("static="+static, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "d.vdi")
			formattest.QemuImg(t, "create", "-f", "vdi", "-o", "static="+static, name, "9M")
			formattest.QemuIO(t, "vdi", name,
				"write -P 0xab 0 1M", "write -P 0xcd 3M 5k", "write -z 4M 1M",
				"write -P 0x11 7M 100", "write -P 0x12 2M 1M", "write -P 0x13 8M 1M")
			compareWithQemu(t, name, 1<<20)
		})
	}
}
