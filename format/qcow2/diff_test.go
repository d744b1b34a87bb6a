package qcow2

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/testutil"
)

// ourMap walks the chain of d like qemu-img map --output=json.
func ourMap(t testing.TB, d block.Driver) []mapEntry {
	t.Helper()
	var out []mapEntry
	size := d.Size()
	for off := int64(0); off < size; {
		e, err := block.ChainStatus(d, off, size-off, nil)
		if err != nil {
			t.Fatalf("chain status at %d: %v", off, err)
		}
		me := mapEntry{Start: off, Length: e.Len, Depth: e.Depth, Present: e.Status.Present(),
			Zero: e.Status&block.Zero != 0 || !e.Status.Present(), Data: e.Status&block.Data != 0}
		if n := len(out); n > 0 && out[n-1].Depth == me.Depth && out[n-1].Zero == me.Zero && out[n-1].Data == me.Data {
			out[n-1].Length += me.Length
		} else {
			out = append(out, me)
		}
		off = e.End()
	}
	return out
}

// diffOp is one operation of a differential sequence.
type diffOp struct {
	kind     string // write, zero, zero-unmap, discard
	off, n   int64
	pattern  byte
	qemuArgs string
}

func randomOps(r *rand.Rand, count int, size, cs int64, discard bool) []diffOp {
	var ops []diffOp
	for len(ops) < count {
		var off, n int64
		switch r.Intn(4) {
		case 0: // cluster aligned, whole clusters
			off = r.Int63n(size/cs) * cs
			n = (1 + r.Int63n(3)) * cs
		case 1: // sector aligned, partial clusters
			off = r.Int63n(size/512) * 512
			n = (1 + r.Int63n(min(3*cs, 256<<10)/512)) * 512
		default: // byte unaligned
			off = r.Int63n(size)
			n = 1 + r.Int63n(min(2*cs, 200<<10))
		}
		n = min(n, size-off)
		if n <= 0 {
			continue
		}
		op := diffOp{off: off, n: n}
		switch k := r.Intn(10); {
		case k < 5:
			op.kind, op.pattern = "write", byte(1+r.Intn(250))
			op.qemuArgs = fmt.Sprintf("write -P %d %d %d", op.pattern, off, n)
		case k < 7:
			op.kind, op.qemuArgs = "zero", fmt.Sprintf("write -z %d %d", off, n)
		case k < 8:
			op.kind, op.qemuArgs = "zero-unmap", fmt.Sprintf("write -z -u %d %d", off, n)
		default:
			if !discard {
				continue
			}
			op.kind, op.qemuArgs = "discard", fmt.Sprintf("discard %d %d", off, n)
		}
		ops = append(ops, op)
	}
	return ops
}

func applyOp(d block.Driver, op diffOp) error {
	switch op.kind {
	case "write":
		p := make([]byte, op.n)
		for i := range p {
			p[i] = op.pattern
		}
		return d.Pwrite(p, op.off, 0)
	case "zero":
		return d.WriteZeroes(op.off, op.n, 0)
	case "zero-unmap":
		return d.WriteZeroes(op.off, op.n, block.MayUnmap)
	case "discard":
		return d.Discard(op.off, op.n, 0)
	}
	return fmt.Errorf("unknown op %s", op.kind)
}

type diffConfig struct {
	clusterSize int64
	compat      string
	refBits     int
	extL2       bool
	backing     string // none, raw, chain
}

func (c diffConfig) String() string {
	return fmt.Sprintf("c%d-%s-rb%d-ext%v-%s", c.clusterSize, c.compat, c.refBits, c.extL2, c.backing)
}

func (c diffConfig) opts() string {
	s := fmt.Sprintf("cluster_size=%d,compat=%s,refcount_bits=%d", c.clusterSize, c.compat, c.refBits)
	if c.extL2 {
		s += ",extended_l2=on"
	}
	return s
}

var diffMatrix = []diffConfig{
	{65536, "1.1", 16, false, "none"},
	{65536, "1.1", 16, false, "raw"},
	{65536, "1.1", 16, false, "chain"},
	{4096, "1.1", 1, false, "chain"},
	{4096, "0.10", 16, false, "none"},
	{65536, "0.10", 16, false, "raw"},
	{65536, "0.10", 16, false, "chain"},
	{2 << 20, "1.1", 64, false, "none"},
	{2 << 20, "1.1", 16, true, "chain"},
	{65536, "1.1", 16, true, "raw"},
	{32768, "1.1", 64, true, "none"},
	{4096, "1.1", 64, false, "raw"},
	{16384, "1.1", 1, true, "chain"},
}

// TestDifferentialQemuIO applies the same random operations to one image
// in-process and to a copy with qemu-io, then compares content, qemu-img
// map (depth/zero/data for every byte) and qemu-img check.
func TestDifferentialQemuIO(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	seed := testutil.Seed(t)
	for i, cfg := range diffMatrix {
		t.Run(cfg.String(), func(t *testing.T) {
			r := rand.New(rand.NewSource(seed + int64(i)))
			runDifferential(t, r, cfg, "")
		})
	}
}

// TestDifferentialThinblkIO is TestDifferentialQemuIO with our side run by
// the `thinblk io` binary, over a part of the matrix.
func TestDifferentialThinblkIO(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	bin := testutil.Thinblk(t)
	seed := testutil.Seed(t)
	for i, cfg := range diffMatrix {
		if i%3 != 0 {
			continue
		}
		t.Run(cfg.String(), func(t *testing.T) {
			r := rand.New(rand.NewSource(seed + 1000 + int64(i)))
			runDifferential(t, r, cfg, bin)
		})
	}
}

// runDifferential applies the operations in-process, or with bin (the
// thinblk binary) through `thinblk io` when bin is not empty.
func runDifferential(t *testing.T, r *rand.Rand, cfg diffConfig, bin string) {
	dir := t.TempDir()
	cs := cfg.clusterSize
	size := max(4<<20, 6*cs) + int64(r.Intn(3))*512 // sometimes not cluster aligned
	backingArgs := []string{}
	switch cfg.backing {
	case "raw":
		b := filepath.Join(dir, "base.raw")
		run(t, "qemu-img", "create", "-q", "-f", "raw", b, fmt.Sprint(size))
		run(t, "qemu-io", "-f", "raw", "-c", fmt.Sprintf("write -P 0xb1 0 %d", size/3), "-c", fmt.Sprintf("write -P 0xb2 %d %d", size/2, size/5), b)
		backingArgs = []string{"-b", "base.raw", "-F", "raw"}
	case "chain":
		b := filepath.Join(dir, "base.qcow2")
		m := filepath.Join(dir, "mid.qcow2")
		run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", b, fmt.Sprint(size))
		run(t, "qemu-io", "-f", "qcow2", "-c", fmt.Sprintf("write -P 0xc1 0 %d", size/3), "-c", fmt.Sprintf("write -P 0xc2 %d %d", size/2, size/4), b)
		run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=1.1", "-b", "base.qcow2", "-F", "qcow2", m)
		run(t, "qemu-io", "-f", "qcow2", "-c", fmt.Sprintf("write -P 0xd1 %d %d", size/4, size/4), "-c", fmt.Sprintf("write -z %d %d", size/8, 128<<10), m)
		backingArgs = []string{"-b", "mid.qcow2", "-F", "qcow2"}
	}
	ours := filepath.Join(dir, "ours.qcow2")
	theirs := filepath.Join(dir, "theirs.qcow2")
	for _, f := range []string{ours, theirs} {
		args := append([]string{"create", "-q", "-f", "qcow2", "-o", cfg.opts()}, backingArgs...)
		run(t, "qemu-img", append(args, f, fmt.Sprint(size))...)
	}
	// Start from identical content: a few writes by qemu-io into both.
	pre := []string{"-f", "qcow2", "-c", fmt.Sprintf("write -P 0xe1 %d %d", size/6, 3*cs/2), "-c", fmt.Sprintf("write -P 0xe2 %d %d", size-cs, cs/2)}
	run(t, "qemu-io", append(pre, ours)...)
	run(t, "qemu-io", append(pre, theirs)...)

	discard := !(cfg.compat == "0.10" && cfg.backing != "none")
	ops := randomOps(r, 100, size, cs, discard)
	var log []string
	args := []string{"-f", "qcow2"}
	for _, op := range ops {
		log = append(log, op.qemuArgs)
		args = append(args, "-c", op.qemuArgs)
	}
	if bin != "" {
		// The same commands through `thinblk io`.
		out, err := runCode(bin, append(append([]string{"io"}, args...), ours)...)
		if err != nil {
			t.Fatalf("thinblk io: %v\n%s", err, out)
		}
	} else {
		d := openPath(t, ours, false)
		for _, op := range ops {
			if err := applyOp(d, op); err != nil {
				t.Fatalf("%s: %v", op.qemuArgs, err)
			}
		}
		if err := d.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "qemu-io", append(args, theirs)...)
	fail := func(format string, a ...any) {
		t.Helper()
		_ = os.WriteFile(filepath.Join(dir, "ops.txt"), []byte(strings.Join(log, "\n")), 0o644)
		t.Fatalf("ops:\n%s\n"+format, append([]any{strings.Join(log, "\n")}, a...)...)
	}
	if out, err := runCode("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", ours, theirs); err != nil {
		fail("qemu-img compare: %v\n%s", err, out)
	}
	mustBeClean(t, ours)
	got := qemuMap(t, ours)
	want := qemuMap(t, theirs)
	compareMapsOr(t, got, want, fail)
	// Our own map of our image agrees with qemu's map of it, zero flag
	// included where there is data (QEMU reports data over holes of a
	// file it takes as metadata-preallocated as zero, and so do we).
	d := openPath(t, ours, true)
	defer d.Close()
	compareMapsStrictOr(t, ourMap(t, d), got, fail)
}
