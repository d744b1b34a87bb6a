package vhdx

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
)

// buildImage lays out an empty image for p in memory (as Create would
// write it), returning the bytes and the parsed geometry and BAT offset.
func buildImage(t testing.TB, p CreateParams) ([]byte, geometry, int64) {
	t.Helper()
	ws, fileSize := layout(p)
	b := make([]byte, fileSize)
	for _, w := range ws {
		copy(b[w.off:], w.data)
	}
	var batOff int64
	rs, err := parseRegionTable(b[region1Offset:region1Offset+regionSize], fileSize)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.GUID == regionBAT {
			batOff = int64(r.Offset)
		}
	}
	meta := &Metadata{BlockSize: uint32(p.BlockSize), VirtualSize: uint64(p.Size), LogicalSectorSize: 512, HasParent: p.parent != ""}
	return b, newGeometry(meta), batOff
}

// appendBlock appends a MiB-aligned block of data to b and returns b and
// the block's offset.
func appendBlock(b, data []byte) ([]byte, int64) {
	at := roundUp(int64(len(b)), mib)
	b = append(b, make([]byte, at-int64(len(b)))...)
	return append(b, data...), at
}

func setEntry(b []byte, batOff, idx int64, e uint64) {
	binary.LittleEndian.PutUint64(b[batOff+idx*8:], e)
}

// TestDifferencing reads a differencing image over a qemu-made parent:
// FULLY_PRESENT blocks from the child, PARTIALLY_PRESENT blocks per the
// sector bitmap, ZERO blocks as zeros, the rest from the parent.
func TestDifferencing(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	rng := rand.New(rand.NewSource(testutil.Seed(t)))
	dir := t.TempDir()
	const size, bs = 8 << 20, 1 << 20
	parent := filepath.Join(dir, "parent.vhdx")
	formattest.RunCmd(t, "qemu-img", "create", "-q", "-f", "vhdx", "-o", "block_size=1M", parent, "8M")
	formattest.RunCmd(t, "qemu-io", "-f", "vhdx", "-c", "write -P 0x77 0 8M", parent)
	want := formattest.QemuRaw(t, parent, "vhdx")

	pimg := formattest.OpenImage(t, parent, "vhdx")
	pv, _ := block.As[*Image](pimg)
	linkage := "{" + strings.ToUpper(pv.header.DataWriteGUID.String()) + "}"
	b, g, batOff := buildImage(t, CreateParams{Size: size, BlockSize: bs, LogSize: mib, Subformat: "dynamic", parent: `.\parent.vhdx`, parentLinkage: linkage})
	child := map[int64]bool{} // sectors stored in the child
	// Block 1 fully present.
	data := make([]byte, bs)
	rng.Read(data)
	b, at := appendBlock(b, data)
	setEntry(b, batOff, g.payloadIndex(1), makeEntry(payloadFullyPresent, at))
	copy(want[bs:], data)
	for s := int64(bs / 512); s < 2*bs/512; s++ {
		child[s] = true
	}
	// Block 2 zero.
	setEntry(b, batOff, g.payloadIndex(2), makeEntry(payloadZero, 0))
	clear(want[2*bs : 3*bs])
	for s := int64(2 * bs / 512); s < 3*bs/512; s++ {
		child[s] = true
	}
	// Blocks 4 and 6 partially present, with the chunk's sector bitmap.
	bitmap := make([]byte, bitmapBlock)
	for _, bi := range []int64{4, 6} {
		rng.Read(data)
		var at int64
		b, at = appendBlock(b, data)
		setEntry(b, batOff, g.payloadIndex(bi), makeEntry(payloadPartiallyPresent, at))
		for s := bi * bs / 512; s < (bi+1)*bs/512; s++ {
			if (s/int64(1+rng.Intn(30)))%2 == 0 {
				bitmap[s/8] |= 1 << (s % 8)
				off := s * 512
				copy(want[off:off+512], data[off-bi*bs:])
				child[s] = true
			}
		}
	}
	b, at = appendBlock(b, bitmap)
	setEntry(b, batOff, g.bitmapIndex(0), makeEntry(bitmapPresent, at))
	name := filepath.Join(dir, "child.vhdx")
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}

	d := formattest.OpenImage(t, name, "")
	if i := firstDiff(formattest.ReadAll(t, d), want); i >= 0 {
		t.Fatalf("content differs at byte %d", i)
	}
	if bf, ok := block.As[image.BackingFiler](d); !ok {
		t.Fatal("no BackingFiler")
	} else if n, _ := bf.BackingFile(); n != "parent.vhdx" {
		t.Fatalf("parent %q", n)
	}
	for off := int64(0); off < size; {
		e, err := block.ChainStatus(d, off, size-off, nil)
		if err != nil {
			t.Fatal(err)
		}
		for s := e.Off / 512; s < e.End()/512; s++ {
			if child[s] != (e.Depth == 0) {
				t.Fatalf("sector %d: %+v, child has it: %v", s, e, child[s])
			}
		}
		off = e.End()
	}
	if d.Caps().Write {
		t.Fatal("a differencing image claims to be writable")
	}
	// A parent written after the child was made is refused, unless asked.
	// (Open readers of the parent refuse writers, as QEMU's do: close them.)
	d.Close()
	pimg.Close()
	formattest.RunCmd(t, "qemu-io", "-f", "vhdx", "-c", "write -P 0x78 0 4k", parent)
	if _, err := image.Open(name, image.Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "parent_linkage") {
		t.Fatalf("open over a changed parent: %v", err)
	}
	d3, err := image.Open(name, image.Options{ReadOnly: true, Options: map[string]string{"parent-linkage-check": "off"}})
	if err != nil {
		t.Fatal(err)
	}
	d3.Close()
	// The writer refuses it too.
	rw, err := image.Open(name, image.Options{Options: map[string]string{"parent-linkage-check": "off"}})
	if err == nil {
		if err := rw.Pwrite([]byte{1}, 0, 0); !errors.Is(err, block.ErrReadOnly) {
			t.Fatalf("write to a differencing image: %v", err)
		}
		rw.Close()
	}
}

// TestDirtyLog: an image with a log to replay is refused with a message
// that says so, and opens read-only with ignore-log=on.
func TestDirtyLog(t *testing.T) {
	b, _, _ := buildImage(t, CreateParams{Size: 4 << 20, BlockSize: 1 << 20, LogSize: mib, Subformat: "dynamic"})
	h, err := parseHeader(b[header2Offset:])
	if err != nil {
		t.Fatal(err)
	}
	h.LogGUID = mustGUID("01234567-89ab-cdef-0123-456789abcdef")
	h.SequenceNumber = 10
	copy(b[header2Offset:], h.encode())
	name := filepath.Join(t.TempDir(), "dirty.vhdx")
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = image.Open(name, image.Options{ReadOnly: true})
	if err == nil || !strings.Contains(err.Error(), "log to replay") || !errors.Is(err, block.ErrNotSupported) {
		t.Fatalf("open of a dirty image: %v", err)
	}
	if _, err := image.Open(name, image.Options{Options: map[string]string{"ignore-log": "on"}}); err == nil {
		t.Fatal("a dirty image opened read-write with ignore-log")
	}
	d, err := image.Open(name, image.Options{ReadOnly: true, Options: map[string]string{"ignore-log": "on"}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	info, err := d.Info()
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := info.Specific.(*Specific); !ok || s.Log != "dirty, not replayed" {
		t.Fatalf("specific %+v", info.Specific)
	}
	// The older header (sequence 1) is ignored: a corrupt newer one makes
	// the older current again.
	b[header2Offset+100] ^= 1
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	d2, err := image.Open(name, image.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open with a corrupt newer header: %v", err)
	}
	d2.Close()
}
