package tool

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
	_ "github.com/thinblk/thinblk/format/qcow2"
	_ "github.com/thinblk/thinblk/format/raw"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/internal/workload"
)

// convertFixture is a small sparse raw image from the workload generator,
// its qcow2 conversion by qemu-img and a qcow2 overlay over that.
type convertFixture struct {
	dir            string
	raw, base, top string
	base010        string // compat=0.10 conversion
	compressed     string // compressed conversion
	spec           workload.Spec
	plan           []workload.Extent
}

func newConvertFixture(t *testing.T) convertFixture {
	t.Helper()
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	seed := testutil.Seed(t)
	dir := t.TempDir()
	f := convertFixture{dir: dir, raw: filepath.Join(dir, "src.raw"), base: filepath.Join(dir, "base.qcow2"),
		top: filepath.Join(dir, "top.qcow2"), base010: filepath.Join(dir, "base010.qcow2"),
		compressed: filepath.Join(dir, "compressed.qcow2"),
		spec:       workload.Spec{Size: 48 << 20, Data: 6 << 20, Zero: 2 << 20, Seed: uint64(seed)}}
	var err error
	if f.plan, err = workload.Plan(f.spec); err != nil {
		t.Fatal(err)
	}
	if err := workload.Create(f.raw, f.spec); err != nil {
		t.Fatal(err)
	}
	testutil.MustRun(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", f.raw, f.base)
	testutil.MustRun(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "compat=0.10", f.raw, f.base010)
	testutil.MustRun(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-c", f.raw, f.compressed)
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", f.base, "-F", "qcow2", f.top)
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x5c 1M 3M", "-c", "write -z 8M 2M",
		"-c", "discard 16M 2M", "-c", "write -P 0x17 20M 300k", f.top)
	return f
}

// mapData sums the lengths qemu-img map reports as data stored in name
// itself (depth 0).
func mapData(t *testing.T, name, format string) int64 {
	t.Helper()
	out := testutil.MustRun(t, "qemu-img", "map", "-f", format, "--output=json", name)
	var entries []struct {
		Length int64 `json:"length"`
		Depth  int   `json:"depth"`
		Data   bool  `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("qemu-img map %s: %v", name, err)
	}
	var n int64
	for _, e := range entries {
		if e.Depth == 0 && e.Data {
			n += e.Length
		}
	}
	return n
}

// checkSame asserts that qemu-img compare finds src and out identical and,
// for qcow2, that qemu-img check finds out clean.
func checkSame(t *testing.T, src, out, outFmt string) {
	t.Helper()
	if o, e, code := testutil.Run(t, "qemu-img", "compare", src, out); code != 0 {
		t.Fatalf("qemu-img compare %s %s: exit %d: %s%s", src, out, code, o, e)
	}
	if outFmt == "qcow2" {
		if o, e, code := testutil.Run(t, "qemu-img", "check", out); code != 0 {
			t.Fatalf("qemu-img check %s: exit %d: %s%s", out, code, o, e)
		}
	}
}

func TestConvertMatchesQemuImg(t *testing.T) {
	f := newConvertFixture(t)
	cases := []struct {
		name    string
		src     string
		srcFmt  string
		outFmt  string
		qemu    []string // qemu-img convert flags besides -f/-O
		o       ConvertOptions
		backing bool // -B base
	}{
		{name: "raw-raw", src: f.raw, srcFmt: "raw", outFmt: "raw"},
		{name: "raw-qcow2", src: f.raw, srcFmt: "raw", outFmt: "qcow2"},
		{name: "raw-qcow2-compat010", src: f.raw, srcFmt: "raw", outFmt: "qcow2",
			qemu: []string{"-o", "compat=0.10"}, o: ConvertOptions{Options: map[string]string{"compat": "0.10"}}},
		{name: "raw-qcow2-4k", src: f.raw, srcFmt: "raw", outFmt: "qcow2",
			qemu: []string{"-o", "cluster_size=4k"}, o: ConvertOptions{Options: map[string]string{"cluster_size": "4k"}}},
		{name: "raw-qcow2-compressed", src: f.raw, srcFmt: "raw", outFmt: "qcow2",
			qemu: []string{"-c"}, o: ConvertOptions{Compress: true}},
		{name: "qcow2-raw", src: f.base, srcFmt: "qcow2", outFmt: "raw"},
		{name: "qcow2-qcow2", src: f.base, srcFmt: "qcow2", outFmt: "qcow2"},
		{name: "qcow2v2-raw", src: f.base010, srcFmt: "qcow2", outFmt: "raw"},
		{name: "qcow2v2-qcow2v2", src: f.base010, srcFmt: "qcow2", outFmt: "qcow2",
			qemu: []string{"-o", "compat=0.10"}, o: ConvertOptions{Options: map[string]string{"compat": "0.10"}}},
		{name: "compressed-raw", src: f.compressed, srcFmt: "qcow2", outFmt: "raw"},
		{name: "compressed-compressed", src: f.compressed, srcFmt: "qcow2", outFmt: "qcow2",
			qemu: []string{"-c"}, o: ConvertOptions{Compress: true}},
		{name: "overlay-flatten-raw", src: f.top, srcFmt: "qcow2", outFmt: "raw"},
		{name: "overlay-flatten-qcow2", src: f.top, srcFmt: "qcow2", outFmt: "qcow2", o: ConvertOptions{OutOfOrder: true}, qemu: []string{"-W"}},
		{name: "overlay-with-backing", src: f.top, srcFmt: "qcow2", outFmt: "qcow2", backing: true},
		{name: "raw-with-backing", src: f.raw, srcFmt: "raw", outFmt: "qcow2", backing: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(f.dir, c.name+".t."+c.outFmt)
			ref := filepath.Join(f.dir, c.name+".q."+c.outFmt)
			qargs := append([]string{"convert", "-f", c.srcFmt, "-O", c.outFmt}, c.qemu...)
			o := c.o
			o.SrcFormat, o.OutFormat, o.SparseSize = c.srcFmt, c.outFmt, -1
			if c.backing {
				qargs = append(qargs, "-B", f.base, "-F", "qcow2")
				o.Backing, o.BackingFormat = f.base, "qcow2"
			}
			testutil.MustRun(t, "qemu-img", append(qargs, c.src, ref)...)
			if err := Convert(io.Discard, io.Discard, []string{c.src}, out, o); err != nil {
				t.Fatal(err)
			}
			checkSame(t, c.src, out, c.outFmt)
			if got, want := testutil.HostBytes(t, out), testutil.HostBytes(t, ref); got > want {
				t.Errorf("thinblk's output occupies %d bytes, qemu-img's %d", got, want)
			}
			if got, want := mapData(t, out, c.outFmt), mapData(t, ref, c.outFmt); got > want {
				t.Errorf("qemu-img map: thinblk's output stores %d bytes of data, qemu-img's %d", got, want)
			}
			if c.backing {
				// Only what differs from the backing file is in the overlay.
				top := testutil.HostBytes(t, out)
				if top > 8<<20 {
					t.Errorf("overlay over its own backing holds %d bytes", top)
				}
			}
		})
	}
}

// TestConvertZerosBecomeHoles: the written-zero extents of the source are
// holes (raw) or unallocated/zero clusters (qcow2) in the target.
func TestConvertZerosBecomeHoles(t *testing.T) {
	f := newConvertFixture(t)
	for _, outFmt := range []string{"raw", "qcow2"} {
		out := filepath.Join(f.dir, "holes."+outFmt)
		if err := Convert(io.Discard, io.Discard, []string{f.raw}, out, ConvertOptions{SrcFormat: "raw", OutFormat: outFmt, SparseSize: -1}); err != nil {
			t.Fatal(err)
		}
		d, err := image.Open(out, image.Options{Format: outFmt, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, e := range f.plan {
			if !e.Zero {
				continue
			}
			// With qcow2 only whole clusters can be holes.
			off, end := e.Off, e.Off+e.Len
			if outFmt == "qcow2" {
				off, end = (off+65535)&^65535, end&^65535
			}
			for off < end {
				x, err := block.ChainStatus(d, off, end-off, nil)
				if err != nil {
					t.Fatal(err)
				}
				if x.Status&block.Data != 0 {
					t.Errorf("%s: written-zero range %d+%d is stored as data", outFmt, off, x.Len)
					break
				}
				off += x.Len
				checked++
			}
		}
		d.Close()
		if checked == 0 {
			t.Fatalf("%s: no zero extent checked", outFmt)
		}
		checkSame(t, f.raw, out, outFmt)
	}
}

func TestConvertFullyAllocate(t *testing.T) {
	f := newConvertFixture(t)
	out := filepath.Join(f.dir, "full.raw")
	if err := Convert(io.Discard, io.Discard, []string{f.raw}, out, ConvertOptions{SrcFormat: "raw", SparseSize: 0}); err != nil {
		t.Fatal(err)
	}
	checkSame(t, f.raw, out, "raw")
	if got := testutil.HostBytes(t, out); got < f.spec.Size {
		t.Fatalf("-S 0 output occupies %d bytes, want all %d", got, f.spec.Size)
	}
}

var statsLine = regexp.MustCompile(`read (\d+) bytes, wrote (\d+) bytes, zeroed (\d+) bytes, skipped (\d+) bytes`)

func convertStats(t *testing.T, out string) (read, wrote, zeroed, skipped int64) {
	t.Helper()
	m := statsLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no stats line in %q", out)
	}
	v := make([]int64, 4)
	for i := range v {
		v[i], _ = strconv.ParseInt(m[i+1], 10, 64)
	}
	return v[0], v[1], v[2], v[3]
}

func TestConvertTargetIsZero(t *testing.T) {
	f := newConvertFixture(t)
	// A fresh thin qcow2 made by qemu-img, filled with -n --target-is-zero:
	// no zeroing at all.
	dst := filepath.Join(f.dir, "fresh.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", dst, strconv.FormatInt(f.spec.Size, 10))
	var sb strings.Builder
	o := ConvertOptions{SrcFormat: "raw", OutFormat: "qcow2", SparseSize: -1, NoCreate: true, TargetIsZero: true, Stats: true}
	if err := Convert(&sb, io.Discard, []string{f.raw}, dst, o); err != nil {
		t.Fatal(err)
	}
	if _, _, zeroed, _ := convertStats(t, sb.String()); zeroed != 0 {
		t.Fatalf("--target-is-zero zeroed %d bytes", zeroed)
	}
	checkSame(t, f.raw, dst, "qcow2")

	// Without the promise, an existing target whose status says it is
	// empty is recognised too.
	dst2 := filepath.Join(f.dir, "fresh2.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", dst2, strconv.FormatInt(f.spec.Size, 10))
	sb.Reset()
	o.TargetIsZero = false
	if err := Convert(&sb, io.Discard, []string{f.raw}, dst2, o); err != nil {
		t.Fatal(err)
	}
	if _, _, zeroed, _ := convertStats(t, sb.String()); zeroed != 0 {
		t.Fatalf("-n onto an empty qcow2 zeroed %d bytes", zeroed)
	}
	checkSame(t, f.raw, dst2, "qcow2")

	// An existing raw target full of junk, -n without the promise: the
	// zeros are zeroed and the content ends up identical.
	junk := filepath.Join(f.dir, "junk.raw")
	p := make([]byte, f.spec.Size)
	for i := range p {
		p[i] = byte(i%253 + 1)
	}
	if err := os.WriteFile(junk, p, 0o644); err != nil {
		t.Fatal(err)
	}
	sb.Reset()
	o = ConvertOptions{SrcFormat: "raw", OutFormat: "raw", SparseSize: -1, NoCreate: true, Stats: true}
	if err := Convert(&sb, io.Discard, []string{f.raw}, junk, o); err != nil {
		t.Fatal(err)
	}
	if _, _, zeroed, _ := convertStats(t, sb.String()); zeroed == 0 {
		t.Fatal("nothing zeroed on a target full of junk")
	}
	checkSame(t, f.raw, junk, "raw")
	if got := testutil.HostBytes(t, junk); got > f.spec.Size/2 {
		t.Errorf("zeroed ranges were not deallocated: %d bytes in use", got)
	}

	// --target-is-zero needs -n, as in qemu-img.
	err := Convert(io.Discard, io.Discard, []string{f.raw}, filepath.Join(f.dir, "x.raw"), ConvertOptions{TargetIsZero: true})
	if err == nil || !strings.Contains(err.Error(), "-n") {
		t.Fatalf("--target-is-zero without -n: %v", err)
	}
}

func TestConvertConcat(t *testing.T) {
	f := newConvertFixture(t)
	out := filepath.Join(f.dir, "cat.raw")
	if err := Convert(io.Discard, io.Discard, []string{f.raw, f.top}, out, ConvertOptions{OutFormat: "raw", SparseSize: -1}); err != nil {
		t.Fatal(err)
	}
	// The second half is the overlay's content.
	part := filepath.Join(f.dir, "part2.raw")
	testutil.MustRun(t, "qemu-img", "dd", "-f", "raw", "-O", "raw", "bs=1M", fmt.Sprintf("skip=%d", f.spec.Size>>20), "if="+out, "of="+part)
	checkSame(t, f.top, part, "raw")
}

// TestConvertCLIReadError: a source (nbdkit's eval plugin) whose reads
// fail around one offset stops the copy with that offset in one line on
// stderr, exit 1.
func TestConvertCLIReadError(t *testing.T) {
	testutil.NeedTool(t, "nbdkit")
	tb := testutil.Thinblk(t)
	dir := t.TempDir()
	const bad = 12<<20 + 300<<10
	out := filepath.Join(dir, "out.raw")
	pread := fmt.Sprintf(`if [ $4 -le %d ] && [ $(($4+$3)) -gt %d ]; then echo "EIO injected" >&2; exit 1; fi; head -c $3 /dev/zero | tr "\0" "\1"`, bad, bad)
	_, stderr, code := testutil.Run(t, "nbdkit", "-U", "-", "eval", "get_size=echo 16777216", "pread="+pread,
		"--run", tb+" convert -f raw -O raw $uri "+out)
	if code == 0 {
		t.Fatal("convert over a failing read succeeded")
	}
	var line string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if strings.HasPrefix(l, "thinblk:") {
			if line != "" {
				t.Fatalf("more than one thinblk line: %q", stderr)
			}
			line = l
		}
	}
	m := regexp.MustCompile(`read \S+ at offset (\d+) length (\d+)`).FindStringSubmatch(line)
	if m == nil || strings.Contains(stderr, "goroutine") || !strings.Contains(line, "incomplete") {
		t.Fatalf("stderr %q: want one line naming the failed read and the incomplete target", stderr)
	}
	off, _ := strconv.ParseInt(m[1], 10, 64)
	n, _ := strconv.ParseInt(m[2], 10, 64)
	if off > bad || bad >= off+n {
		t.Fatalf("failed request %d+%d does not hold the failing offset %d", off, n, bad)
	}
	src := filepath.Join(dir, "src.raw")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "raw", src, "1M")

	for _, args := range [][]string{
		{"convert", "--target-is-zero", src, out},
		{"convert", "-B", src, "-n", src, out},
		{"convert", "-c", "-W", "-O", "qcow2", src, out},
		{"convert", src},
	} {
		_, stderr, code := testutil.Run(t, tb, args...)
		if code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and one line", args, code, stderr)
		}
	}
}
