package vdi

import (
	"encoding/binary"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/formattest"
	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/protocol/mem"
)

// vdiLayout reads the block map offset and blocks_in_image of a VDI file.
func vdiLayout(t *testing.T, name string) (bmap int64, blocks uint32, b []byte) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return int64(binary.LittleEndian.Uint32(b[0x154:])), binary.LittleEndian.Uint32(b[0x180:]), b
}

// TestCheckClean: VDI images made by qemu-img (dynamic and static, empty
// and written) and by thinblk convert check clean with both programs, with
// the same JSON; -r is refused by both with 63.
func TestCheckClean(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	var names []string
	for _, c := range []struct{ name, opts string }{{"dyn.vdi", ""}, {"static.vdi", "static=on"}} {
		name := filepath.Join(dir, c.name)
		args := []string{"create", "-q", "-f", "vdi"}
		if c.opts != "" {
			args = append(args, "-o", c.opts)
		}
		formattest.QemuImg(t, append(args, name, "5M")...)
		if c.opts == "" {
			empty := filepath.Join(dir, "empty.vdi")
			formattest.QemuImg(t, "create", "-q", "-f", "vdi", empty, "5M")
			names = append(names, empty)
		}
		formattest.QemuIO(t, "vdi", name, "write -P 1 0 1500k", "write -P 2 3m 4k")
		names = append(names, name)
	}
	src := filepath.Join(dir, "src.raw")
	formattest.QemuImg(t, "create", "-q", "-f", "raw", src, "5M")
	formattest.QemuIO(t, "raw", src, "write -P 3 1m 2m", "write -P 4 4m 512")
	conv := filepath.Join(dir, "conv.vdi")
	testutil.MustRun(t, testutil.Thinblk(t), "convert", "-f", "raw", "-O", "vdi", src, conv)
	names = append(names, conv)
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

// TestCheckCorrupt flips block map entries of a qemu-made image (the entry
// chosen at random) and expects both programs to exit 2 with the same
// corruption count, thinblk printing one ERROR line per corruption that
// names what is wrong.
func TestCheckCorrupt(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	rng := rand.New(rand.NewSource(testutil.Seed(t)))
	dir := t.TempDir()
	base := filepath.Join(dir, "base.vdi")
	formattest.QemuImg(t, "create", "-q", "-f", "vdi", base, "16M")
	formattest.QemuIO(t, "vdi", base, "write -P 1 0 3M", "write -P 2 9M 1M")
	bmap, blocks, orig := vdiLayout(t, base)
	entry := func(b []byte, i int) uint32 { return binary.LittleEndian.Uint32(b[bmap+int64(i)*4:]) }
	var allocated, free []int
	for i := 0; i < int(blocks); i++ {
		if entry(orig, i) < entryDiscarded {
			allocated = append(allocated, i)
		} else {
			free = append(free, i)
		}
	}
	if len(allocated) != 4 {
		t.Fatalf("qemu-img wrote %d blocks, want 4", len(allocated))
	}
	pick := func(s []int) int { return s[rng.Intn(len(s))] }
	cases := []struct {
		name string
		// set returns the entry to change and its new value.
		set func() (int, uint32)
		// want are substrings of thinblk's ERROR lines, one per line.
		want []string
		// more is how many of them qemu-img does not report.
		more int
	}{
		{"too-large", func() (int, uint32) { return pick(allocated), blocks + uint32(rng.Intn(1000)) },
			[]string{"too large", "allocated blocks mismatch, is 3, should be 4"}, 0},
		{"twice", func() (int, uint32) {
			a := rng.Perm(len(allocated))
			return allocated[a[0]], entry(orig, allocated[a[1]])
		}, []string{"also used by"}, 0},
		// An entry naming a data block inside blocks_in_image but past
		// the end of the file: qemu sees the count mismatch only.
		{"past-eof", func() (int, uint32) { return pick(free), uint32(len(allocated)) + 2 },
			[]string{"past the end of the file", "allocated blocks mismatch, is 5, should be 4"}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := append([]byte(nil), orig...)
			i, v := c.set()
			binary.LittleEndian.PutUint32(b[bmap+int64(i)*4:], v)
			t.Logf("entry %d: %#x -> %#x", i, entry(orig, i), v)
			name := filepath.Join(t.TempDir(), "bad.vdi")
			if err := os.WriteFile(name, b, 0o644); err != nil {
				t.Fatal(err)
			}
			o := formattest.CheckBoth(t, name, c.more)
			if o.Code != 2 {
				t.Fatalf("exit %d, want 2\n%s", o.Code, o.Human)
			}
			lines := formattest.ErrorLines(o.Human)
			if len(lines) != len(c.want) {
				t.Fatalf("%d ERROR lines, want %d:\n%s", len(lines), len(c.want), o.Human)
			}
			for k, w := range c.want {
				if !strings.Contains(lines[k], w) {
					t.Fatalf("ERROR line %q does not say %q", lines[k], w)
				}
			}
			// No repair, even where thinblk refuses a writable open
			// (a doubly used block).
			if o := formattest.CheckBoth(t, name, 0, "-r", "leaks"); o.Code != 63 {
				t.Fatalf("-r leaks: exit %d, want 63\n%s", o.Code, o.Human)
			}
		})
	}
}

// TestCheckDirect: Check on an opened image counts a truncated data block
// (both of its ends) and refuses repair with ErrNotSupported.
func TestCheckDirect(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	name := filepath.Join(t.TempDir(), "t.vdi")
	formattest.QemuImg(t, "create", "-q", "-f", "vdi", name, "4M")
	formattest.QemuIO(t, "vdi", name, "write -P 1 0 2M")
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	// Cut the last data block in half: its end is past the end of the file.
	if err := os.Truncate(name, fi.Size()-512<<10); err != nil {
		t.Fatal(err)
	}
	d, err := image.Open(name, image.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	img, _ := block.As[*Image](d)
	problems, _, err := img.Check(false)
	if err != nil || len(problems) != 1 || !strings.Contains(problems[0], "block index 1") || !strings.Contains(problems[0], "ends at") {
		t.Fatalf("Check = %q, %v; want one line about block index 1 ending past the end", problems, err)
	}
	if _, _, err := img.Check(true); !errors.Is(err, block.ErrNotSupported) {
		t.Fatalf("Check(repair) = %v, want ErrNotSupported", err)
	}
}

// TestCheckNoCheck: vpc and raw images have no check, for qemu-img and
// thinblk alike (exit 63), with and without -r.
func TestCheckNoCheck(t *testing.T) {
	testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	for _, f := range []string{"vpc", "raw"} {
		name := filepath.Join(dir, "t."+f)
		formattest.QemuImg(t, "create", "-q", "-f", f, name, "2M")
		for _, args := range [][]string{nil, {"-r", "all"}} {
			if o := formattest.CheckBoth(t, name, 0, args...); o.Code != 63 {
				t.Fatalf("%s %v: exit %d, want 63", f, args, o.Code)
			}
		}
	}
}

// FuzzCheck runs Check on arbitrary images that open: every problem is one
// "ERROR: " line, never a panic or a giant allocation, and repair is always
// refused.
//
//	go test ./format/vdi -run '^$' -fuzz FuzzCheck -fuzztime 60s
func FuzzCheck(f *testing.F) {
	f.Add(tinyDynamic())
	for _, s := range qemuSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		node := mem.New(int64(len(data)))
		if err := node.Pwrite(data, 0, 0); err != nil {
			t.Fatal(err)
		}
		img, err := Open(node, image.FormatOpen{Name: "fuzz.vdi", ReadOnly: true})
		if err != nil {
			return
		}
		defer img.Close()
		problems, _, err := img.Check(false)
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		for _, p := range problems {
			if !strings.HasPrefix(p, "ERROR: ") || strings.Contains(p, "\n") {
				t.Fatalf("problem line %q", p)
			}
		}
		if _, _, err := img.Check(true); !errors.Is(err, block.ErrNotSupported) {
			t.Fatalf("Check(repair) = %v", err)
		}
	})
}
