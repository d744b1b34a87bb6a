package vhdx

import (
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/thinblk/thinblk/internal/formattest"
	"github.com/thinblk/thinblk/internal/testutil"
)

// ioOp is one qemu-io write.
type ioOp struct {
	off, n int64
	zero   bool
	pat    int
}

// randomOps picks writes (data and written zeros) at offsets chosen by rng,
// some unaligned to blocks, plus one at the very end.
func randomOps(rng *rand.Rand, size int64) []ioOp {
	var ops []ioOp
	for i := 0; i < 10; i++ {
		n := int64(512 * (1 + rng.Intn(600)))
		off := rng.Int63n((size-n)/512) * 512
		ops = append(ops, ioOp{off: off, n: n, zero: rng.Intn(4) == 0, pat: 1 + rng.Intn(254)})
	}
	return append(ops, ioOp{off: size - 4096, n: 4096, pat: 0x5a})
}

func qemuIO(t *testing.T, name, format string, ops []ioOp) {
	t.Helper()
	testutil.NeedTool(t, "qemu-io")
	args := []string{"-f", format}
	for _, op := range ops {
		if op.zero {
			args = append(args, "-c", fmt.Sprintf("write -z %d %d", op.off, op.n))
		} else {
			args = append(args, "-c", fmt.Sprintf("write -P 0x%02x %d %d", op.pat, op.off, op.n))
		}
	}
	formattest.RunCmd(t, "qemu-io", append(args, name)...)
}

// TestQemuImages reads images qemu-img made and qemu-io filled: content
// equals qemu-img convert's, and the blocks reported as data are exactly
// the blocks qemu-io wrote (qemu-img map reports every VHDX block as data,
// so the writes are the reference).
func TestQemuImages(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	seed := testutil.Seed(t)
	for _, tc := range []struct {
		name, opts string
		size       int64
		block      int64
	}{
		{"dynamic", "subformat=dynamic", 40 << 20, 8 << 20},
		{"dynamic-1m", "subformat=dynamic,block_size=1M", 13<<20 + 512, 1 << 20},
		{"fixed", "subformat=fixed,block_size=1M", 9 << 20, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			name := filepath.Join(t.TempDir(), "img.vhdx")
			formattest.RunCmd(t, "qemu-img", "create", "-q", "-f", "vhdx", "-o", tc.opts, name, fmt.Sprint(tc.size))
			ops := randomOps(rng, tc.size)
			qemuIO(t, name, "vhdx", ops)
			want := formattest.QemuRaw(t, name, "vhdx")
			d := formattest.OpenImage(t, name, "")
			if d.Size() != int64(len(want)) {
				t.Fatalf("size %d, qemu-img says %d", d.Size(), len(want))
			}
			if i := firstDiff(formattest.ReadAll(t, d), want); i >= 0 {
				t.Fatalf("content differs from qemu-img convert at byte %d", i)
			}
			var model []span
			written := map[int64]bool{}
			for _, op := range ops {
				for b := op.off / tc.block; b*tc.block < op.off+op.n; b++ {
					written[b] = true
				}
			}
			for b := int64(0); b*tc.block < tc.size; b++ {
				model = appendSpan(model, span{b * tc.block, min(tc.block, tc.size-b*tc.block), written[b]})
			}
			if got := ourMap(t, d); !equalSpans(got, model) {
				t.Fatalf("map differs:\n ours    %v\n written %v", got, model)
			}
			// Through the CLI: thinblk convert -O raw is identical for
			// qemu-img compare.
			out := filepath.Join(t.TempDir(), "out.raw")
			formattest.RunCmd(t, testutil.Thinblk(t), "convert", "-O", "raw", name, out)
			formattest.RunCmd(t, "qemu-img", "compare", "-f", "vhdx", "-F", "raw", name, out)
		})
	}
}
