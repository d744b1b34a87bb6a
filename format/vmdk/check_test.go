package vmdk

import (
	"encoding/binary"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/formattest"
	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/protocol/mem"
)

// The check helpers below are the same as format/vdi's check_test.go
// (TODO: move them to internal/formattest, which another helper owns).

// firstGT returns the file offset of the first grain table of the
// monolithicSparse file b and its number of entries.
func firstGT(t *testing.T, b []byte) (int64, int) {
	t.Helper()
	gd := int64(binary.LittleEndian.Uint64(b[56:])) * 512
	gt := int64(binary.LittleEndian.Uint32(b[gd:])) * 512
	if gt == 0 {
		t.Fatal("the first grain table is missing")
	}
	return gt, int(binary.LittleEndian.Uint32(b[44:]))
}

// TestCheckClean: VMDK images made by qemu-img (every subformat thinblk
// reads, empty and written) and by thinblk convert check clean with both
// programs, with the same JSON; -r is refused by both with 63.
func TestCheckClean(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	var names []string
	for _, sub := range []string{"monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat", "streamOptimized"} {
		name := filepath.Join(dir, sub+".vmdk")
		formattest.QemuImg(t, "create", "-q", "-f", "vmdk", "-o", "subformat="+sub, name, "5M")
		if sub != "streamOptimized" {
			formattest.QemuIO(t, "vmdk", name, "write -P 1 0 300k", "write -P 2 3m 4k")
		}
		names = append(names, name)
	}
	src := filepath.Join(dir, "src.raw")
	formattest.QemuImg(t, "create", "-q", "-f", "raw", src, "5M")
	formattest.QemuIO(t, "raw", src, "write -P 3 1m 2m", "write -P 4 4m 512")
	stream := filepath.Join(dir, "conv-stream.vmdk")
	formattest.QemuImg(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", src, stream)
	names = append(names, stream)
	for _, sub := range []string{"monolithicSparse", "streamOptimized"} {
		conv := filepath.Join(dir, "conv-"+sub+"-thinblk.vmdk")
		testutil.MustRun(t, testutil.Thinblk(t), "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat="+sub, src, conv)
		names = append(names, conv)
	}
	for _, name := range names {
		o := formattest.CheckBoth(t, name, 0)
		if o.Code != 0 || !strings.Contains(o.Human, "No errors were found on the image.") {
			t.Fatalf("%s: exit %d\n%s", name, o.Code, o.Human)
		}
		for _, r := range []string{"leaks", "all"} {
			if o := formattest.CheckBoth(t, name, 0, "-r", r); o.Code != 63 {
				t.Fatalf("%s -r %s: exit %d, want 63", name, r, o.Code)
			}
		}
	}
}

// TestCheckCorrupt flips grain table entries of a qemu-made
// monolithicSparse image (entries chosen at random).
func TestCheckCorrupt(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	rng := rand.New(rand.NewSource(testutil.Seed(t)))
	dir := t.TempDir()
	base := filepath.Join(dir, "base.vmdk")
	formattest.QemuImg(t, "create", "-q", "-f", "vmdk", base, "4M")
	formattest.QemuIO(t, "vmdk", base, "write -P 1 0 256k", "write -P 2 1m 64k")
	orig, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	gt, n := firstGT(t, orig)
	entry := func(b []byte, i int) uint32 { return binary.LittleEndian.Uint32(b[gt+int64(i)*4:]) }
	var allocated, free []int
	for i := 0; i < n && int64(i)*64<<10 < 4<<20; i++ {
		if entry(orig, i) > 1 {
			allocated = append(allocated, i)
		} else {
			free = append(free, i)
		}
	}
	if len(allocated) != 5 {
		t.Fatalf("qemu-img wrote %d grains, want 5", len(allocated))
	}
	write := func(t *testing.T, i int, v uint32) string {
		b := append([]byte(nil), orig...)
		binary.LittleEndian.PutUint32(b[gt+int64(i)*4:], v)
		t.Logf("grain table entry %d: %d -> %d", i, entry(orig, i), v)
		name := filepath.Join(t.TempDir(), "bad.vmdk")
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return name
	}
	t.Run("past-eof", func(t *testing.T) {
		// qemu-img stops at the grain: "Check failed", exit 1, no JSON.
		i := free[rng.Intn(len(free))]
		name := write(t, i, uint32(len(orig)/512+rng.Intn(1<<20)))
		o := formattest.CheckBoth(t, name, 0)
		if o.Code != 1 || o.JSON != nil {
			t.Fatalf("exit %d, JSON %v; want 1 and none\n%s", o.Code, o.JSON, o.Human)
		}
		lines := formattest.ErrorLines(o.Human)
		want := "cluster offset for sector " + strconv.Itoa(i*128) + " points after EOF"
		if len(lines) != 1 || !strings.Contains(lines[0], want) {
			t.Fatalf("ERROR lines %q, want one saying %q", lines, want)
		}
	})
	t.Run("twice", func(t *testing.T) {
		// Two entries name one grain: qemu-img does not look (exit 0);
		// thinblk reports the overlap (exit 2).
		a := rng.Perm(len(allocated))
		name := write(t, allocated[a[0]], entry(orig, allocated[a[1]]))
		q := formattest.RunCheck(t, "qemu-img", name)
		o := formattest.RunCheck(t, testutil.Thinblk(t), name)
		if q.Code != 0 || o.Code != 2 {
			t.Fatalf("exit codes qemu-img %d, thinblk %d; want 0 and 2\n%s", q.Code, o.Code, o.Human)
		}
		if lines := formattest.ErrorLines(o.Human); len(lines) != 1 || !strings.Contains(lines[0], "overlaps the cluster for sector") {
			t.Fatalf("ERROR lines %q, want one about the overlap", lines)
		}
		if c, _ := o.JSON["corruptions"].(float64); c != 1 {
			t.Fatalf("JSON %v, want 1 corruption", o.JSON)
		}
	})
}

// TestCheckDirect: Check lists every grain past the end of the file (qemu
// stops at the first), including one that only ends past it, and returns
// an ErrCorrupt error; repair is refused with ErrNotSupported.
func TestCheckDirect(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	name := filepath.Join(t.TempDir(), "t.vmdk")
	formattest.QemuImg(t, "create", "-q", "-f", "vmdk", name, "4M")
	formattest.QemuIO(t, "vmdk", name, "write -P 1 0 192k")
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	gt, _ := firstGT(t, b)
	last := int64(binary.LittleEndian.Uint32(b[gt+8:])) * 512 // grain 2 is the last in the file
	if last+64<<10 != int64(len(b)) {
		t.Fatalf("grain 2 at %d is not the end of the file (%d bytes)", last, len(b))
	}
	binary.LittleEndian.PutUint32(b[gt+4*4:], uint32(len(b)/512+1000))
	binary.LittleEndian.PutUint32(b[gt+5*4:], uint32(len(b)/512))
	b = b[:len(b)-4096] // grain 2 now ends past the end
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := image.Open(name, image.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	img, _ := block.As[*Image](d)
	problems, _, err := img.Check(false)
	if !errors.Is(err, block.ErrCorrupt) || len(problems) != 3 {
		t.Fatalf("Check = %q, %v; want 3 problems and ErrCorrupt", problems, err)
	}
	for k, w := range []string{"sector 256 runs past EOF", "sector 512 points after EOF", "sector 640 points after EOF"} {
		if !strings.Contains(problems[k], w) {
			t.Fatalf("problem %d %q does not say %q", k, problems[k], w)
		}
	}
	if _, _, err := img.Check(true); !errors.Is(err, block.ErrNotSupported) {
		t.Fatalf("Check(repair) = %v, want ErrNotSupported", err)
	}
}

// FuzzCheck runs Check on arbitrary images that open (extent files named
// by a descriptor are never opened): every problem is one "ERROR: " line,
// an error is ErrCorrupt (grains past the end) or a read error, never a
// panic or a giant allocation.
//
//	go test ./format/vmdk -run '^$' -fuzz FuzzCheck -fuzztime 60s
func FuzzCheck(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	saved := openExtentFile
	f.Cleanup(func() { openExtentFile = saved })
	openExtentFile = func(path string, _ bool) (block.Driver, error) {
		return nil, errors.New("fuzz: extent files are not opened")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		node := mem.New(int64(len(data)))
		if err := node.Pwrite(data, 0, 0); err != nil {
			t.Fatal(err)
		}
		img, err := Open(node, image.FormatOpen{Name: "fuzz.vmdk", ReadOnly: true, NoBacking: true})
		if err != nil {
			return
		}
		defer img.Close()
		problems, _, err := img.Check(false)
		if err != nil && !errors.Is(err, block.ErrCorrupt) {
			t.Fatalf("Check: %v", err)
		}
		for _, p := range problems {
			if !strings.HasPrefix(p, "ERROR: ") || strings.Contains(p, "\n") {
				t.Fatalf("problem line %q", p)
			}
		}
	})
}
