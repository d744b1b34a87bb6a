package vmdk

import (
	"path/filepath"
	"strings"
	"testing"
)

// pattern writes data, written zeros and holes at grain-aligned offsets of
// a 4 MiB disk (64 KiB grains), and one unaligned write.
var pattern = []string{
	"write -P 0xab 0 64k",
	"write -P 0xcd 128k 192k",
	"write -z 512k 128k",
	"write -P 0x11 1M 4k",
	"write -P 0x22 1100k 100",
	"write -z 2M 64k",
	"write -P 0x33 4032k 64k",
}

func TestReadSubformats(t *testing.T) {
	for _, sub := range []string{"monolithicSparse", "streamOptimized", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat"} {
		t.Run(sub, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "d.vmdk")
			qemuImg(t, "create", "-f", "vmdk", "-o", "subformat="+sub, name, "4M")
			if sub == "streamOptimized" {
				// qemu writes streamOptimized only sequentially: convert.
				src := filepath.Join(t.TempDir(), "src.qcow2")
				qemuImg(t, "create", "-f", "qcow2", src, "4M")
				qemuIO(t, "qcow2", src, pattern...)
				qemuImg(t, "convert", "-f", "qcow2", "-O", "vmdk", "-o", "subformat=streamOptimized", src, name)
			} else {
				qemuIO(t, "vmdk", name, pattern...)
			}
			compareWithQemu(t, name, 64<<10, strings.Contains(sub, "Flat"))
		})
	}
}
