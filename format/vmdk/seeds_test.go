package vmdk

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// qemuSeeds returns small images made by qemu-img (monolithicSparse with
// data, streamOptimized), or none when qemu-img is not installed.
func qemuSeeds(tb testing.TB) [][]byte {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		return nil
	}
	dir := tb.TempDir()
	var out [][]byte
	sparse := filepath.Join(dir, "s.vmdk")
	if exec.Command("qemu-img", "create", "-f", "vmdk", "-o", "zeroed_grain=on", sparse, "256k").Run() == nil &&
		exec.Command("qemu-io", "-f", "vmdk", "-c", "write -P 1 0 4k", "-c", "write -z 64k 64k", sparse).Run() == nil {
		if b, err := os.ReadFile(sparse); err == nil {
			out = append(out, b)
		}
	}
	stream := filepath.Join(dir, "so.vmdk")
	if exec.Command("qemu-img", "convert", "-f", "vmdk", "-O", "vmdk", "-o", "subformat=streamOptimized", sparse, stream).Run() == nil {
		if b, err := os.ReadFile(stream); err == nil {
			out = append(out, b)
		}
	}
	return out
}
