package qcow2

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/block/blocktest"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/protocol/mem"
)

// preallocCase builds one image in dir and returns its path.
type preallocCase struct {
	name string
	// zeroData: qemu-img map must show some data that reads zeros (the
	// image looks metadata-preallocated to QEMU), or must not. It keeps
	// each case honest about what it exercises.
	zeroData bool
	build    func(t *testing.T, dir string) string
}

// qemuWrites is a qemu-io sequence with data, zeros with and without
// unmap, a discard and small writes inside clusters.
var qemuWrites = []string{"-c", "write -P 7 0 300k", "-c", "write -z 400k 200k", "-c", "write -z -u 700k 100k",
	"-c", "discard 800k 64k", "-c", "write -P 9 900k 5k", "-c", "write -P 1 2500k 2k"}

// createWith creates name with qemu-img -o opts and size, then applies the
// qemu-io commands.
func createWith(t *testing.T, dir, name, opts, size string, io []string) string {
	t.Helper()
	img := filepath.Join(dir, name)
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, img, size)
	if len(io) > 0 {
		run(t, "qemu-io", append(append([]string{"-f", "qcow2"}, io...), img)...)
	}
	return img
}

// qemuDataRuns returns the host ranges of img's data runs as qemu-img map
// reports them.
func qemuDataRuns(t *testing.T, img string) [][2]int64 {
	t.Helper()
	var m []struct {
		Length int64
		Data   bool
		Offset *int64
	}
	if err := json.Unmarshal([]byte(run(t, "qemu-img", "map", "--output=json", img)), &m); err != nil {
		t.Fatal(err)
	}
	var runs [][2]int64
	for _, e := range m {
		if e.Data && e.Offset != nil {
			runs = append(runs, [2]int64{*e.Offset, e.Length})
		}
	}
	return runs
}

// punchHost punches n holes of length ln into the host ranges of img's
// data, one every step bytes, with fallocate(1) (the image is not open).
func punchHost(t *testing.T, img string, n int, step, ln int64) {
	t.Helper()
	for _, r := range qemuDataRuns(t, img) {
		for o := r[0]; o < r[0]+r[1] && n > 0; o, n = o+step, n-1 {
			run(t, "fallocate", "--punch-hole", "-o", fmt.Sprint(o), "-l", fmt.Sprint(min(ln, r[0]+r[1]-o)), img)
		}
	}
}

var preallocCases = []preallocCase{
	{"metadata-4k", true, func(t *testing.T, d string) string {
		return createWith(t, d, "m4k.qcow2", "preallocation=metadata,cluster_size=4k", "3146240", qemuWrites)
	}},
	{"metadata-64k", true, func(t *testing.T, d string) string {
		return createWith(t, d, "m64k.qcow2", "preallocation=metadata", "40M", qemuWrites)
	}},
	{"metadata-64k-small", true, func(t *testing.T, d string) string {
		return createWith(t, d, "m64ks.qcow2", "preallocation=metadata", "1000448", []string{"-c", "write -P 2 64k 4k"})
	}},
	{"metadata-2M", true, func(t *testing.T, d string) string {
		return createWith(t, d, "m2m.qcow2", "preallocation=metadata,cluster_size=2M", "9M", qemuWrites)
	}},
	{"metadata-extl2", false, func(t *testing.T, d string) string {
		// Subclusters stay unallocated: qemu shows their host offset.
		return createWith(t, d, "mext.qcow2", "preallocation=metadata,extended_l2=on", "6M", qemuWrites)
	}},
	{"metadata-short-file", true, func(t *testing.T, d string) string {
		img := createWith(t, d, "short.qcow2", "preallocation=metadata", "6M", []string{"-c", "write -P 3 6080k 60k"})
		fi, err := os.Stat(img)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, fi.Size()-30000); err != nil {
			t.Fatal(err)
		}
		return img
	}},
	{"falloc", false, func(t *testing.T, d string) string {
		return createWith(t, d, "falloc.qcow2", "preallocation=falloc", "6M", qemuWrites)
	}},
	{"full-4k", false, func(t *testing.T, d string) string {
		return createWith(t, d, "full4k.qcow2", "preallocation=full,cluster_size=4k", "3M", qemuWrites)
	}},
	{"ordinary-64k", false, func(t *testing.T, d string) string {
		return createWith(t, d, "plain.qcow2", "cluster_size=64k", "6M", qemuWrites)
	}},
	{"ordinary-4k", false, func(t *testing.T, d string) string {
		return createWith(t, d, "plain4k.qcow2", "cluster_size=4k", "6M", qemuWrites)
	}},
	{"punched-few", false, func(t *testing.T, d string) string {
		img := createWith(t, d, "pf.qcow2", "cluster_size=64k", "8M", []string{"-c", "write -P 5 0 5M", "-c", "write -P 6 6M 1M"})
		punchHost(t, img, 2, 128<<10, 64<<10)
		return img
	}},
	{"punched-many", true, func(t *testing.T, d string) string {
		img := createWith(t, d, "pm.qcow2", "cluster_size=64k", "8M", []string{"-c", "write -P 5 0 5M", "-c", "write -P 6 6M 1M"})
		punchHost(t, img, 40, 128<<10, 64<<10)
		return img
	}},
	{"punched-partial-4k", true, func(t *testing.T, d string) string {
		img := createWith(t, d, "pp.qcow2", "cluster_size=4k", "8M", []string{"-c", "write -P 5 0 5M"})
		punchHost(t, img, 300, 12<<10, 4<<10)
		return img
	}},
	{"full-2M-punched", true, func(t *testing.T, d string) string {
		img := createWith(t, d, "f2m.qcow2", "preallocation=full,cluster_size=2M", "40M", []string{"-c", "write -P 4 3M 1M"})
		punchHost(t, img, 6, 6<<20, 2<<20)
		return img
	}},
	{"chain-metadata-base", true, func(t *testing.T, d string) string {
		createWith(t, d, "pbase.qcow2", "preallocation=metadata", "8M", []string{"-c", "write -P 5 0 3M"})
		return createWith(t, d, "ptop.qcow2", "backing_file=pbase.qcow2,backing_fmt=qcow2", "8M",
			[]string{"-c", "write -P 6 1M 1M", "-c", "write -z 5M 64k"})
	}},
}

// TestMapPreallocMatchesQemu: on images whose data clusters lie over holes
// of the host file (metadata preallocation, punched clusters, a short
// file) and on images where QEMU must not look at the file (falloc, full,
// ordinary, a few punched clusters), `thinblk map --output=json` prints
// exactly what `qemu-img map --output=json` prints, and our own status
// walk agrees with it on zero/data/depth everywhere.
func TestMapPreallocMatchesQemu(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io", "fallocate")
	bin := testutil.Thinblk(t)
	for _, c := range preallocCases {
		t.Run(c.name, func(t *testing.T) {
			img := c.build(t, t.TempDir())
			want := run(t, "qemu-img", "map", "--output=json", img)
			if got := strings.Contains(want, `"zero": true, "data": true`); got != c.zeroData {
				t.Fatalf("qemu-img map shows data that reads zeros: %v, the case expects %v\n%s", got, c.zeroData, want)
			}
			got := run(t, bin, "map", "--output=json", img)
			if got != want {
				t.Fatalf("thinblk map differs from qemu-img map\nthinblk:\n%s\nqemu-img:\n%s", got, want)
			}
			d := openPath(t, img, true)
			defer d.Close()
			compareMapsStrictOr(t, ourMap(t, d), qemuMap(t, img), func(f string, a ...any) { t.Fatalf(f, a...) })
		})
	}
}

// compareMapsStrictOr is compareMapsOr comparing zero under data too: for
// two maps of the same image file.
func compareMapsStrictOr(t testing.TB, got, want []mapEntry, fail func(string, ...any)) {
	t.Helper()
	if d := mapDiff(got, want, true); d != "" {
		fail("%s", d)
	}
}

// createMetadataImage makes a metadata-preallocated image of size bytes
// with thinblk's own create (64 KiB clusters) and returns its path.
func createMetadataImage(t *testing.T, size int64) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "meta.qcow2")
	co := image.CreateOptions{Size: size, Options: map[string]string{"preallocation": "metadata"}}
	if err := image.Create(name, "qcow2", co); err != nil {
		t.Fatal(err)
	}
	return name
}

// mustStatus returns BlockStatus(off, n) of d.
func mustStatus(t *testing.T, d block.Driver, off, n int64) block.Extent {
	t.Helper()
	e, err := d.BlockStatus(off, n)
	if err != nil {
		t.Fatalf("BlockStatus(%d, %d): %v", off, n, err)
	}
	return e
}

// TestStatusPreallocCutsAtFileExtents: on a metadata-preallocated image a
// data run is cut where the file's data ends, and the part over the hole
// is Data|Zero with its host offset; the image stays detected after
// writes (the decision is made once).
func TestStatusPreallocCutsAtFileExtents(t *testing.T) {
	name := createMetadataImage(t, 4<<20)
	d := openPath(t, name, false)
	defer d.Close()
	e := mustStatus(t, d, 0, 4<<20)
	if e.Status != block.Data|block.Zero || e.Len != 4<<20 || e.HostOffset < 0 {
		t.Fatalf("fresh metadata-preallocated image: got %+v, want Data|Zero over the whole disk with a host offset", e)
	}
	host := e.HostOffset
	// 4 KiB of data in the second cluster.
	p := bytes.Repeat([]byte{0x5a}, 4096)
	if err := d.Pwrite(p, 64<<10, 0); err != nil {
		t.Fatal(err)
	}
	e = mustStatus(t, d, 0, 4<<20)
	if e.Status != block.Data|block.Zero || e.Len != 64<<10 || e.HostOffset != host {
		t.Fatalf("before the written cluster: got %+v, want Data|Zero for 64 KiB at host %d", e, host)
	}
	e = mustStatus(t, d, 64<<10, 4<<20-64<<10)
	if e.Status&(block.Data|block.Zero) != block.Data || e.Len != 4096 || e.HostOffset != host+64<<10 {
		t.Fatalf("written 4 KiB: got %+v, want Data (not Zero) for 4096 bytes at host %d", e, host+64<<10)
	}
	e = mustStatus(t, d, 68<<10, 4<<20-68<<10)
	if e.Status != block.Data|block.Zero || e.End() != 4<<20 {
		t.Fatalf("after the written 4 KiB: got %+v, want Data|Zero to the end", e)
	}
	// Only a part of the range asked: the run ends there.
	e = mustStatus(t, d, 128<<10, 8192)
	if e.Status != block.Data|block.Zero || e.Len != 8192 {
		t.Fatalf("short request: got %+v", e)
	}
	buf := make([]byte, 64<<10)
	if err := d.Pread(buf, 200<<10); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Fatal("a Data|Zero run does not read zeros")
	}
}

// TestMetaPreallocDecidedAtFirstStatus: like QEMU, the image is classified
// at its first block status request, not at open, and never again: a
// metadata-preallocated image whose clusters were all written before that
// request is ordinary; an ordinary image whose clusters are punched
// behind its back after it was classified stays ordinary until reopened.
func TestMetaPreallocDecidedAtFirstStatus(t *testing.T) {
	t.Run("written-before-first-status", func(t *testing.T) {
		// Large enough that the sparse metadata clusters (a few KiB
		// written of each) do not tip the count.
		const size = 16 << 20
		name := createMetadataImage(t, size)
		d := openPath(t, name, false)
		defer d.Close()
		if err := d.Pwrite(bytes.Repeat([]byte{1}, size), 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := d.Flush(); err != nil {
			t.Fatal(err)
		}
		e := mustStatus(t, d, 0, size)
		if e.Status&(block.Data|block.Zero) != block.Data {
			t.Fatalf("got %+v, want Data", e)
		}
		img, ok := block.As[*Image](d)
		if !ok {
			t.Fatal("no *Image in the stack")
		}
		img.mu.Lock()
		on := img.meta.on
		img.mu.Unlock()
		if on {
			t.Fatal("an image with every cluster written is still taken as metadata-preallocated")
		}
	})
	t.Run("punched-after-first-status", func(t *testing.T) {
		testutil.NeedTool(t, "qemu-img", "qemu-io", "fallocate")
		img := createWith(t, t.TempDir(), "plain.qcow2", "cluster_size=64k", "8M", []string{"-c", "write -P 5 0 6M"})
		d := openPath(t, img, true)
		defer d.Close()
		if e := mustStatus(t, d, 0, 8<<20); e.Status&(block.Data|block.Zero) != block.Data {
			t.Fatalf("before punching: got %+v, want Data", e)
		}
		punchHost(t, img, 60, 64<<10, 64<<10) // the first 60 data clusters
		if e := mustStatus(t, d, 0, 8<<20); e.Status&(block.Data|block.Zero) != block.Data {
			t.Fatalf("punched after the first status: got %+v, want Data (the decision stands)", e)
		}
		d.Close()
		d = openPath(t, img, true)
		if e := mustStatus(t, d, 0, 8<<20); e.Status != block.Data|block.Zero {
			t.Fatalf("reopened after punching: got %+v, want Data|Zero", e)
		}
		want := run(t, "qemu-img", "map", "--output=json", img)
		if !strings.Contains(want, `"zero": true, "data": true`) {
			t.Fatalf("qemu-img does not take the punched image as preallocated, the test is wrong:\n%s", want)
		}
	})
}

// TestBlocktestMetaPrealloc runs the conformance suite on a
// metadata-preallocated image file: every Zero that status reports over
// data clusters must read zeros, through writes, zeroing, discards and a
// reopen.
func TestBlocktestMetaPrealloc(t *testing.T) {
	const size = 4 << 20
	name := createMetadataImage(t, size)
	o := blocktest.Options{Size: size, Ops: 300, Concurrent: true}
	o.Reopen = func(d block.Driver) (block.Driver, error) {
		if err := d.Close(); err != nil {
			return nil, err
		}
		return image.Open(name, image.Options{})
	}
	blocktest.Run(t, func(t *testing.T, size int64) block.Driver {
		return openPath(t, name, false)
	}, o)
	mustBeClean(t, name)
}

// TestMetaPreallocThresholdAgainstQemu punches one more data cluster of an
// ordinary image on the host at each step (the first half of it, then the
// rest), so the file's allocation
// falls through QEMU's threshold: at every step `thinblk map` prints what
// `qemu-img map` prints, and the steps cover both sides of the threshold.
func TestMetaPreallocThresholdAgainstQemu(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io", "fallocate")
	bin := testutil.Thinblk(t)
	img := createWith(t, t.TempDir(), "steps.qcow2", "cluster_size=64k", "8M", []string{"-c", "write -P 5 0 6400k"})
	runs := qemuDataRuns(t, img)
	if len(runs) != 1 {
		t.Fatalf("want one data run, got %v", runs)
	}
	var sides [2]bool
	host := runs[0][0]
	for step := 0; step < 28; step++ {
		if step > 0 {
			// Half clusters: the allocation passes the threshold in
			// steps finer than a cluster.
			o := host + int64(step-1)*32<<10
			run(t, "fallocate", "--punch-hole", "-o", fmt.Sprint(o), "-l", "32768", img)
		}
		want := run(t, "qemu-img", "map", "--output=json", img)
		got := run(t, bin, "map", "--output=json", img)
		if got != want {
			t.Fatalf("step %d (%d bytes on the host): thinblk map differs\nthinblk:\n%s\nqemu-img:\n%s", step, testutil.HostBytes(t, img), got, want)
		}
		detected := strings.Contains(want, `"zero": true, "data": true`)
		sides[b2i(detected)] = true
	}
	if !sides[0] || !sides[1] {
		t.Fatalf("the steps did not cross QEMU's threshold (seen: not detected %v, detected %v)", sides[0], sides[1])
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// allocFile is a file node that reports a chosen allocation through
// AllocatedBytes and counts the calls of Info.
type allocFile struct {
	block.Driver
	alloc int64
	infos int
}

func (f *allocFile) AllocatedBytes() (int64, error) { return f.alloc, nil }

// Close leaves the shared node open for the next image.
func (f *allocFile) Close() error { return nil }

func (f *allocFile) Info() (block.Info, error) {
	f.infos++
	return f.Driver.Info()
}

// TestMetaPreallocThresholdExact checks QEMU's rule at its boundary on a
// metadata-preallocated image in memory, with the file's allocation
// chosen: with r whole clusters allocated the image is detected exactly
// when the clusters in use reach max(r*10/9, r+2), bytes short of a whole
// cluster do not count, and the allocation comes from AllocatedBytes, not
// from Info (which walks the file).
func TestMetaPreallocThresholdExact(t *testing.T) {
	node := mem.NewGrowable(0)
	if err := CreateOn(node, image.CreateOptions{Size: 3 << 20, Options: map[string]string{"preallocation": "metadata"}}); err != nil {
		t.Fatal(err)
	}
	open := func(alloc int64) (*Image, *allocFile) {
		f := &allocFile{Driver: node, alloc: alloc}
		img, err := Open(f, image.FormatOpen{Name: "mem.qcow2", ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		return img, f
	}
	// The clusters in use below the end of the file.
	img, _ := open(0)
	cs := img.clusterSize
	end := (node.Size() + cs - 1) / cs
	var used int64
	img.mu.Lock()
	for i := int64(0); i < end; i++ {
		rc, err := img.refcountLocked(i)
		if err != nil {
			t.Fatal(err)
		}
		if rc != 0 {
			used++
		}
	}
	img.mu.Unlock()
	img.Close()
	threshold := func(r int64) int64 { return max(r*10/9, r+2) }
	var r int64 // the most whole clusters allocated that still detect
	for threshold(r+1) <= used {
		r++
	}
	t.Logf("%d clusters in use, detected up to %d allocated", used, r)
	for _, c := range []struct {
		alloc int64
		want  bool
	}{
		{0, true},
		{r * cs, true},
		{r*cs + cs - 1, true},
		{(r + 1) * cs, false},
		{used * cs, false},
	} {
		img, f := open(c.alloc)
		e, err := img.BlockStatus(0, img.Size())
		if err != nil {
			t.Fatal(err)
		}
		got := e.Status&block.Zero != 0
		if got != c.want || e.Status&block.Data == 0 {
			t.Errorf("allocated %d bytes: status %+v, want Data with Zero %v", c.alloc, e, c.want)
		}
		if f.infos != 0 {
			t.Errorf("allocated %d bytes: Info called %d times, want AllocatedBytes only", c.alloc, f.infos)
		}
		img.Close()
	}
}
