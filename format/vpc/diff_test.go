package vpc

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/internal/formattest"
	"github.com/thinblk/thinblk/internal/testutil"
)

// testBlock is one allocated block of a built image: its sector bitmap
// (most significant bit first) and data.
type testBlock struct {
	bitmap []byte
	data   []byte
}

// locator is a parent locator for buildDynamic.
type locator struct {
	code string
	data []byte
}

// utf16LE encodes s as UTF-16 little-endian (W2ru/W2ku locators).
func utf16LE(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// buildDynamic builds a dynamic (no locators) or differencing VHD image
// from scratch, as Virtual PC lays it out: footer copy, dynamic header,
// BAT, locator data, blocks, footer.
func buildDynamic(size, blockSize int64, blocks map[int64]testBlock, parentName string, locs []locator) []byte {
	return buildDynamicID(size, blockSize, blocks, parentName, locs, [16]byte{})
}

// buildDynamicID is buildDynamic recording parentID as the parent's unique
// ID.
func buildDynamicID(size, blockSize int64, blocks map[int64]testBlock, parentName string, locs []locator, parentID [16]byte) []byte {
	f := fixedFooter(CreateParams{Size: size, ForceSize: true})
	f.DiskType = diskDynamic
	if parentName != "" || len(locs) > 0 {
		f.DiskType = diskDifferencing
	}
	f.DataOffset = footerSize
	entries := (size + blockSize - 1) / blockSize
	batBytes := (entries*4 + 511) / 512 * 512
	h := &DynamicHeader{DataOffset: noDataOffset, TableOffset: footerSize + dynHeaderSize, HeaderVersion: 0x00010000,
		MaxTableEntries: uint32(entries), BlockSize: uint32(blockSize)}
	copy(h.Cookie[:], dynCookie)
	h.ParentUniqueID = parentID
	u := utf16.Encode([]rune(parentName))
	for i, c := range u {
		binary.BigEndian.PutUint16(h.ParentUnicodeRaw[2*i:], c)
	}
	img := make([]byte, footerSize+dynHeaderSize+batBytes)
	for i, l := range locs {
		at := int64(len(img))
		space := (int64(len(l.data)) + 511) / 512 * 512
		img = append(img, make([]byte, space)...)
		copy(img[at:], l.data)
		copy(h.Locators[i].PlatformCode[:], l.code)
		h.Locators[i].PlatformDataSpace = uint32(space / 512)
		h.Locators[i].PlatformDataLength = uint32(len(l.data))
		h.Locators[i].PlatformDataOffset = uint64(at)
	}
	bat := make([]byte, batBytes)
	for i := int64(0); i < entries; i++ {
		b, ok := blocks[i]
		if !ok {
			binary.BigEndian.PutUint32(bat[4*i:], batUnallocated)
			continue
		}
		at := int64(len(img))
		binary.BigEndian.PutUint32(bat[4*i:], uint32(at/512))
		bm := make([]byte, bitmapSize(blockSize))
		copy(bm, b.bitmap)
		img = append(img, bm...)
		d := make([]byte, blockSize)
		copy(d, b.data)
		img = append(img, d...)
	}
	copy(img[footerSize+dynHeaderSize:], bat)
	copy(img[footerSize:], h.encode())
	fb := f.encode()
	copy(img, fb)
	return append(img, fb...)
}

// TestDifferencing reads a differencing image over a qemu-made parent:
// sectors whose bitmap bit is set come from the child, the others from the
// parent; block status reports the child's sectors at depth 0 only.
func TestDifferencing(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	rng := rand.New(rand.NewSource(testutil.Seed(t)))
	dir := t.TempDir()
	const size, bs = 8 << 20, 1 << 20
	parent := filepath.Join(dir, "parent.vhd")
	formattest.RunCmd(t, "qemu-img", "create", "-q", "-f", "vpc", "-o", "force_size=on", parent, fmt.Sprint(size))
	formattest.RunCmd(t, "qemu-io", "-f", "vpc", "-c", "write -P 0x77 0 8M", parent)
	parentBytes := formattest.QemuRaw(t, parent, "vpc")

	blocks := map[int64]testBlock{}
	want := append([]byte(nil), parentBytes...)
	childSectors := map[int64]bool{}
	for _, bi := range []int64{0, 3, 7} {
		b := testBlock{bitmap: make([]byte, bs/512/8), data: make([]byte, bs)}
		rng.Read(b.data)
		for s := int64(0); s < bs/512; s++ {
			// Runs of set and clear bits of random lengths.
			if (s/int64(1+rng.Intn(40)))%2 == 0 || bi == 3 {
				b.bitmap[s/8] |= 0x80 >> (s % 8)
				off := bi*bs + s*512
				copy(want[off:off+512], b.data[s*512:])
				childSectors[off/512] = true
			}
		}
		blocks[bi] = b
	}
	locs := []locator{
		{"W2ru", utf16LE(`.\missing.vhd`)},                  // tried first, absent
		{"W2ku", utf16LE(filepath.Join(dir, "parent.vhd"))}, // absolute: opens
	}
	child := filepath.Join(dir, "child.vhd")
	if err := os.WriteFile(child, buildDynamic(size, bs, blocks, "parent.vhd", locs), 0o644); err != nil {
		t.Fatal(err)
	}
	d := formattest.OpenImage(t, child, "")
	if i := firstDiff(formattest.ReadAll(t, d), want); i >= 0 {
		t.Fatalf("content differs at byte %d", i)
	}
	if bf, ok := block.As[image.BackingFiler](d); !ok {
		t.Fatal("no BackingFiler")
	} else if name, _ := bf.BackingFile(); name != filepath.Join(dir, "parent.vhd") {
		t.Fatalf("parent %q", name)
	}
	for off := int64(0); off < size; {
		e, err := block.ChainStatus(d, off, size-off, nil)
		if err != nil {
			t.Fatal(err)
		}
		for s := e.Off / 512; s < e.End()/512; s++ {
			if childSectors[s] != (e.Depth == 0) {
				t.Fatalf("sector %d: depth %d in %+v, child has it: %v", s, e.Depth, e, childSectors[s])
			}
		}
		off = e.End()
	}
	// Without the parent, absent sectors read as zeros.
	nb, err := image.Open(child, image.Options{ReadOnly: true, NoBacking: true})
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close()
	got := formattest.ReadAll(t, nb)
	for s := int64(0); s < size/512; s++ {
		w := make([]byte, 512)
		if childSectors[s] {
			w = want[s*512 : s*512+512]
		}
		if firstDiff(got[s*512:s*512+512], w) >= 0 {
			t.Fatalf("no-backing sector %d differs", s)
		}
	}
	// The parent's Unicode name is the last resort: with a wrong W2ku
	// the name (resolved next to the child) still finds it.
	locs[1] = locator{"W2ku", utf16LE(`C:\nowhere\parent.vhd`)}
	if err := os.WriteFile(child, buildDynamic(size, bs, blocks, "parent.vhd", locs), 0o644); err != nil {
		t.Fatal(err)
	}
	d2 := formattest.OpenImage(t, child, "")
	if i := firstDiff(formattest.ReadAll(t, d2), want); i >= 0 {
		t.Fatalf("content via the Unicode name differs at byte %d", i)
	}
	// The parent's unique ID is checked when the child records one.
	pv, _ := block.As[*Image](formattest.OpenImage(t, parent, "vpc"))
	if err := os.WriteFile(child, buildDynamicID(size, bs, blocks, "parent.vhd", locs, pv.footer.UniqueID), 0o644); err != nil {
		t.Fatal(err)
	}
	formattest.OpenImage(t, child, "")
	if err := os.WriteFile(child, buildDynamicID(size, bs, blocks, "parent.vhd", locs, [16]byte{1}), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := image.Open(child, image.Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "unique ID") {
		t.Fatalf("open over another parent: %v", err)
	}
	if d, err := image.Open(child, image.Options{ReadOnly: true, Options: map[string]string{"parent-linkage-check": "off"}}); err != nil {
		t.Fatalf("open with parent-linkage-check=off: %v", err)
	} else {
		d.Close()
	}
	// No usable locator: a clear error.
	if err := os.WriteFile(child, buildDynamic(size, bs, blocks, "gone.vhd", locs[:1]), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := image.Open(child, image.Options{ReadOnly: true}); err == nil {
		t.Fatal("opened a differencing image whose parent is missing")
	} else {
		t.Logf("missing parent: %v", err)
	}
}

// TestDynamicPartialBitmap: in a dynamic image a sector whose bit is clear
// reads as zeros even if its block holds bytes there.
func TestDynamicPartialBitmap(t *testing.T) {
	const size, bs = 4 << 20, 512 << 10
	data := make([]byte, bs)
	for i := range data {
		data[i] = 0xee
	}
	bm := make([]byte, bs/512/8)
	bm[0] = 0xa0 // sectors 0 and 2
	name := filepath.Join(t.TempDir(), "p.vhd")
	if err := os.WriteFile(name, buildDynamic(size, bs, map[int64]testBlock{1: {bm, data}}, "", nil), 0o644); err != nil {
		t.Fatal(err)
	}
	d := formattest.OpenImage(t, name, "")
	got := formattest.ReadAll(t, d)
	for s := int64(0); s < size/512; s++ {
		want := byte(0)
		if s == bs/512 || s == bs/512+2 {
			want = 0xee
		}
		if got[s*512] != want || got[s*512+511] != want {
			t.Fatalf("sector %d reads %#x, want %#x", s, got[s*512], want)
		}
	}
	e, err := d.BlockStatus(bs, size-bs)
	if err != nil {
		t.Fatal(err)
	}
	if e.Len != 512 || e.Status != block.Data|block.Allocated || e.HostOffset <= 0 {
		t.Fatalf("status of the first sector of block 1: %+v", e)
	}
}
