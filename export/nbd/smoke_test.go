package nbd

import (
	"os/exec"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/protocol/mem"
)

func TestSmokeNbdinfo(t *testing.T) {
	m := mem.New(4 << 20)
	m.Pwrite(make([]byte, 65536), 0, 0)
	p := make([]byte, 65536)
	for i := range p {
		p[i] = 0xab
	}
	m.Pwrite(p, 1<<20, 0)
	s := &Server{Exports: map[string]*Export{"d": {Name: "d", Node: m, Discard: block.DiscardUnmap, AllocationDepth: true}}}
	_, uri := startServer(t, s, "d")
	for _, args := range [][]string{{uri}, {"--map", uri}, {"--map=qemu:allocation-depth", uri}} {
		out, err := exec.Command("nbdinfo", args...).CombinedOutput()
		t.Logf("nbdinfo %v: %v\n%s", args, err, out)
	}
	out, err := exec.Command("qemu-io", "-f", "raw", "-c", "read -P 0xab 1M 64k", "-c", "write -P 0xcd 2M 64k", "-c", "read -P 0xcd 2M 64k", "-c", "write -z 3M 1M", "-c", "discard 0 64k", uri).CombinedOutput()
	t.Logf("qemu-io: %v\n%s", err, out)
	out, err = exec.Command("qemu-img", "map", "--output=json", "-f", "raw", uri).CombinedOutput()
	t.Logf("qemu-img map: %v\n%s", err, out)
}
