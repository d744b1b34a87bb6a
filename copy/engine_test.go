package copy

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"sort"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
)

func TestRunSparseToFreshTarget(t *testing.T) {
	s := seed(t)
	for i := range 20 {
		r := rand.New(rand.NewSource(s + int64(i)))
		size := int64(1+r.Intn(64))*4096*8 + int64(r.Intn(3))*4096
		src := newFake(size, nil)
		want := make([]byte, size)
		fill(t, r, src, want)
		dst := newCounter(newFake(size, nil))
		o := Options{TargetIsZero: true, Parallel: 1 + r.Intn(8), OutOfOrder: r.Intn(2) == 0,
			RequestSize: int64(1+r.Intn(16)) * 4096}
		st, err := Run(context.Background(), src, dst, o)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		got := readAll(t, dst)
		if d := firstDiff(got, want); d >= 0 {
			t.Fatalf("case %d (%+v): content differs at %d", i, o, d)
		}
		if dst.zeroBytes != 0 {
			t.Fatalf("case %d: %d bytes zeroed on a target that reads zeros", i, dst.zeroBytes)
		}
		// Every written 4 KiB granule holds non-zero bytes: zeros are never written.
		for _, w := range dst.writes {
			for g := w.off; g < w.off+w.n; g += 4096 {
				if block.IsZero(got[g:min(g+4096, size)]) {
					t.Fatalf("case %d: zero granule at %d was written", i, g)
				}
			}
		}
		if st.Written != dst.writeBytes {
			t.Fatalf("case %d: stats say %d written, target saw %d", i, st.Written, dst.writeBytes)
		}
		if st.Written+st.Skipped+st.Zeroed != size {
			t.Fatalf("case %d: stats %+v do not add up to %d", i, st, size)
		}
	}
}

func TestRunOverwritesOldTarget(t *testing.T) {
	s := seed(t)
	r := rand.New(rand.NewSource(s))
	const size = 1 << 20
	src := newFake(size, nil)
	want := make([]byte, size)
	fill(t, r, src, want)
	old := newFake(size, nil)
	junk := make([]byte, size)
	r.Read(junk)
	if err := old.Pwrite(junk, 0, 0); err != nil {
		t.Fatal(err)
	}
	dst := newCounter(old)
	st, err := Run(context.Background(), src, dst, Options{RequestSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if d := firstDiff(readAll(t, dst), want); d >= 0 {
		t.Fatalf("content differs at %d", d)
	}
	if st.Zeroed == 0 || dst.zeroBytes != st.Zeroed {
		t.Fatalf("zeroed %d, target saw %d: zeros must go through write-zeroes", st.Zeroed, dst.zeroBytes)
	}
	// The zeroed ranges are deallocated (MayUnmap), not anchored or data.
	for _, w := range dst.writes {
		if w.kind != kindZero {
			continue
		}
		e, err := dst.BlockStatus(w.off, w.n)
		if err != nil {
			t.Fatal(err)
		}
		if e.Status != block.Zero {
			t.Fatalf("zeroed range at %d has status %v, want deallocated zero", w.off, e.Status)
		}
	}
}

func TestRunFullyAllocate(t *testing.T) {
	s := seed(t)
	r := rand.New(rand.NewSource(s))
	const size = 512 << 10
	src := newFake(size, nil)
	want := make([]byte, size)
	fill(t, r, src, want)
	dst := newCounter(newFake(size, nil))
	if _, err := Run(context.Background(), src, dst, Options{SparseSize: FullyAllocate, TargetIsZero: true}); err != nil {
		t.Fatal(err)
	}
	if d := firstDiff(readAll(t, dst), want); d >= 0 {
		t.Fatalf("content differs at %d", d)
	}
	if dst.zeroBytes != 0 || dst.writeBytes != size {
		t.Fatalf("wrote %d bytes and zeroed %d; want all %d written", dst.writeBytes, dst.zeroBytes, size)
	}
	for off := int64(0); off < size; {
		e, err := dst.BlockStatus(off, size-off)
		if err != nil {
			t.Fatal(err)
		}
		if e.Status&block.Data == 0 {
			t.Fatalf("range %d+%d is %v, want data", off, e.Len, e.Status)
		}
		off += e.Len
	}
}

func TestRunInOrderWrites(t *testing.T) {
	s := seed(t)
	r := rand.New(rand.NewSource(s))
	const size = 4 << 20
	src := newFake(size, nil)
	fill(t, r, src, nil)
	dst := newCounter(newFake(size, nil))
	dst.cluster = 4096 // a target that allocates clusters
	if _, err := Run(context.Background(), src, clustered{dst}, Options{Parallel: 8, RequestSize: 16 << 10}); err != nil {
		t.Fatal(err)
	}
	if len(dst.writes) < 10 {
		t.Fatalf("only %d writes; the test needs more", len(dst.writes))
	}
	if !sort.SliceIsSorted(dst.writes, func(i, j int) bool { return dst.writes[i].off < dst.writes[j].off }) {
		t.Fatalf("writes not in target order without OutOfOrder")
	}
}

func TestRunChainWithBase(t *testing.T) {
	s := seed(t)
	r := rand.New(rand.NewSource(s))
	const size = 1 << 20
	base := newFake(size, nil)
	fill(t, r, base, nil)
	top := newFake(size, base)
	fill(t, r, top, nil)
	want := readAll(t, top)

	// Flatten: the whole chain lands in a fresh target.
	flat := newCounter(newFake(size, nil))
	if _, err := Run(context.Background(), top, flat, Options{TargetIsZero: true}); err != nil {
		t.Fatal(err)
	}
	if d := firstDiff(readAll(t, flat), want); d >= 0 {
		t.Fatalf("flattened content differs at %d", d)
	}

	// With Base, only what top allocates goes to an overlay of base.
	ov := newCounter(newFake(size, base))
	if _, err := Run(context.Background(), top, ov, Options{Base: base}); err != nil {
		t.Fatal(err)
	}
	if d := firstDiff(readAll(t, ov), want); d >= 0 {
		t.Fatalf("overlay content differs at %d", d)
	}
	for _, w := range ov.writes {
		for off := w.off; off < w.off+w.n; {
			e, err := top.BlockStatus(off, w.off+w.n-off)
			if err != nil {
				t.Fatal(err)
			}
			if !e.Status.Present() {
				t.Fatalf("wrote %d+%d which top leaves to its backing", off, e.Len)
			}
			off += e.Len
		}
	}
}

func TestRunAgainstBacking(t *testing.T) {
	s := seed(t)
	r := rand.New(rand.NewSource(s))
	const size = 1 << 20
	backing := newFake(size, nil)
	fill(t, r, backing, nil)
	// The source equals the backing except for a few changed ranges.
	src := newFake(size, nil)
	if err := src.Pwrite(readAll(t, backing), 0, 0); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 8192)
	r.Read(p)
	changes := []int64{0, 100 << 10, 700 << 10}
	for _, off := range changes {
		if err := src.Pwrite(p, off, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.WriteZeroes(300<<10, 64<<10, 0); err != nil {
		t.Fatal(err)
	}
	want := readAll(t, src)
	dst := newCounter(newFake(size, backing))
	st, err := Run(context.Background(), src, dst, Options{Backing: backing})
	if err != nil {
		t.Fatal(err)
	}
	if d := firstDiff(readAll(t, dst), want); d >= 0 {
		t.Fatalf("content differs at %d", d)
	}
	if st.Written > int64(len(changes))*8192 {
		t.Fatalf("wrote %d bytes; only %d differ from the backing", st.Written, len(changes)*8192)
	}
	if st.Zeroed > 64<<10 {
		t.Fatalf("zeroed %d bytes; at most 64 KiB needed", st.Zeroed)
	}
}

func TestRunConcat(t *testing.T) {
	s := seed(t)
	r := rand.New(rand.NewSource(s))
	var srcs []Source
	var want []byte
	for i := range 3 {
		size := int64(1+r.Intn(20))*4096 + int64(r.Intn(4096))
		d := newFake(size, nil)
		w := make([]byte, size)
		fill(t, r, d, w)
		off := int64(r.Intn(int(size / 2)))
		srcs = append(srcs, Source{Node: d, Off: off, Len: size - off, Name: "src" + string(rune('a'+i))})
		want = append(want, w[off:]...)
	}
	dst := newFake(int64(len(want))+4096, nil)
	if _, err := RunSources(context.Background(), srcs, dst, Options{TargetIsZero: true, RequestSize: 8192}); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, dst)
	if d := firstDiff(got[:len(want)], want); d >= 0 {
		t.Fatalf("content differs at %d", d)
	}
}

func TestRunCompressed(t *testing.T) {
	s := seed(t)
	r := rand.New(rand.NewSource(s))
	const cluster = 64 << 10
	size := int64(3<<20 + 12288) // a short last cluster
	src := newFake(size, nil)
	want := make([]byte, size)
	fill(t, r, src, want)
	c := newCounter(newFake(size, nil))
	c.cluster = cluster
	dst := clustered{c}
	if _, err := Run(context.Background(), src, dst, Options{Compress: true, TargetIsZero: true}); err != nil {
		t.Fatal(err)
	}
	if d := firstDiff(readAll(t, dst), want); d >= 0 {
		t.Fatalf("content differs at %d", d)
	}
	if len(c.writes) != 0 {
		t.Fatalf("%d plain writes in compress mode", len(c.writes))
	}
	if len(c.compressed) == 0 {
		t.Fatal("no compressed writes")
	}
	for _, w := range c.compressed {
		if w.off%cluster != 0 || (w.n != cluster && w.off+w.n != size) {
			t.Fatalf("compressed write %d+%d is not one whole cluster", w.off, w.n)
		}
		if block.IsZero(want[w.off : w.off+w.n]) {
			t.Fatalf("zero cluster at %d written compressed", w.off)
		}
	}
	// Compression needs a target that can do it.
	if _, err := Run(context.Background(), src, newFake(size, nil), Options{Compress: true}); !errors.Is(err, block.ErrNotSupported) {
		t.Fatalf("compress onto a plain node: %v, want ErrNotSupported", err)
	}
}

func TestRunClusterAlignedZeroDetection(t *testing.T) {
	// A 64 KiB-cluster target: zero detection works in whole clusters, and
	// data extents grow to whole target clusters (one write per cluster
	// instead of a partial write that the target must fill), but holes
	// outside the clusters that hold data are not read.
	const cluster = 64 << 10
	const size = 1 << 20
	src := newFake(size, nil)
	p := make([]byte, 4096)
	p[0] = 1
	for _, off := range []int64{0, 68 << 10, 300 << 10} {
		if err := src.Pwrite(p, off, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.Pwrite(make([]byte, 256<<10), 512<<10, 0); err != nil { // written zeros
		t.Fatal(err)
	}
	c := newCounter(newFake(size, nil))
	c.cluster = cluster
	st, err := Run(context.Background(), src, clustered{c}, Options{TargetIsZero: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Written != 3*cluster {
		// The three clusters holding data are written whole; the written
		// zeros are not written.
		t.Fatalf("wrote %d bytes, want %d", st.Written, 3*cluster)
	}
	if st.Read != 3*cluster+256<<10 {
		t.Fatalf("read %d bytes, want %d (data clusters and written zeros only)", st.Read, 3*cluster+256<<10)
	}
	got := readAll(t, clustered{c})
	want := readAll(t, src)
	if !bytes.Equal(got, want) {
		t.Fatal("target differs from source")
	}
}

func TestRunReadErrorStops(t *testing.T) {
	s := seed(t)
	r := rand.New(rand.NewSource(s))
	const size = 8 << 20
	src := newFake(size, nil)
	p := make([]byte, size)
	r.Read(p)
	if err := src.Pwrite(p, 0, 0); err != nil {
		t.Fatal(err)
	}
	bad := int64(r.Intn(size))
	in := newCounter(src)
	in.failReadAt = bad
	dst := newCounter(newFake(size, nil))
	dst.cluster = 4096 // writes are ordered on a clustered target
	_, err := Run(context.Background(), in, clustered{dst}, Options{SourceName: "disk.img", RequestSize: 256 << 10})
	if err == nil {
		t.Fatal("copy succeeded over a failing read")
	}
	msg := err.Error()
	if !errors.Is(err, errInjected) || strings.Contains(msg, "\n") {
		t.Fatalf("error %q: want the injected error, one line", msg)
	}
	var op *block.OpError
	if !errors.As(err, &op) || op.Node != "disk.img" || bad < op.Off || bad >= op.Off+op.Len {
		t.Fatalf("error %q does not name disk.img and the failed range around %d", msg, bad)
	}
	if !strings.Contains(msg, " "+itoa(bad)) {
		t.Fatalf("error %q does not contain the failing offset %d", msg, bad)
	}
	// Nothing past the failed request was written in order.
	reqStart := bad - bad%(256<<10)
	for _, w := range dst.writes {
		if w.off >= reqStart {
			t.Fatalf("write at %d after the failed request at %d", w.off, reqStart)
		}
	}
}

func TestRunWriteErrorStops(t *testing.T) {
	const size = 4 << 20
	src := newFake(size, nil)
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(i%251 + 1)
	}
	if err := src.Pwrite(p, 0, 0); err != nil {
		t.Fatal(err)
	}
	dst := newCounter(newFake(size, nil))
	dst.failWriteAt = 3 << 20
	_, err := Run(context.Background(), src, dst, Options{OutOfOrder: true, TargetName: "out.img"})
	var op *block.OpError
	if !errors.As(err, &op) || op.Node != "out.img" || op.Op != "write" {
		t.Fatalf("error %v, want a write error on out.img", err)
	}
}

func TestRunRejectsSmallTarget(t *testing.T) {
	src := newFake(1<<20, nil)
	if _, err := Run(context.Background(), src, newFake(1<<19, nil), Options{}); !errors.Is(err, block.ErrOutOfRange) {
		t.Fatalf("err %v, want ErrOutOfRange", err)
	}
}

func TestRunCancel(t *testing.T) {
	src := newFake(1<<20, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, src, newFake(1<<20, nil), Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

func TestRunProgress(t *testing.T) {
	const size = 3 << 20
	src := newFake(size, nil)
	fill(t, rand.New(rand.NewSource(1)), src, nil)
	var last, calls int64
	o := Options{RequestSize: 64 << 10, Progress: func(done, total int64) {
		if total != size || done < last || done > total {
			t.Errorf("progress %d/%d after %d", done, total, last)
		}
		last = done
		calls++
	}}
	if _, err := Run(context.Background(), src, newFake(size, nil), o); err != nil {
		t.Fatal(err)
	}
	if last != size || calls < 2 {
		t.Fatalf("progress ended at %d after %d calls", last, calls)
	}
}

func itoa(v int64) string {
	return strings.TrimSpace(strings.Replace(string(appendInt(nil, v)), "\x00", "", -1))
}

func appendInt(b []byte, v int64) []byte {
	if v >= 10 {
		b = appendInt(b, v/10)
	}
	return append(b, byte('0'+v%10))
}

func TestRunCompressedFullyAllocateBigClusters(t *testing.T) {
	const cluster = 2 << 20
	const size = 5 << 20 // a short last cluster
	src := newFake(size, nil)
	p := make([]byte, 4096)
	p[0] = 9
	if err := src.Pwrite(p, 3<<20, 0); err != nil {
		t.Fatal(err)
	}
	c := newCounter(newFake(size, nil))
	c.cluster = cluster
	if _, err := Run(context.Background(), src, clustered{c}, Options{Compress: true, SparseSize: FullyAllocate}); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, w := range c.compressed {
		if w.off%cluster != 0 || (w.n != cluster && w.off+w.n != size) {
			t.Fatalf("compressed write %d+%d is not one whole cluster", w.off, w.n)
		}
		total += w.n
	}
	if total != size {
		t.Fatalf("compressed %d bytes, want all %d", total, size)
	}
}
