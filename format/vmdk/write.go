package vmdk

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"github.com/thinblk/thinblk/block"
)

// maxPinnedTables bounds the grain table bytes a writable image keeps in
// memory (a 2 TiB disk of 64 KiB grains has 128 MiB of tables).
const maxPinnedTables = 256 << 20

// writer is the state of a writable monolithicSparse image: grains are
// allocated at the end of the file, written whole, then entered in their
// grain table (file first, then memory), so that a crash can leak a grain
// but never map stale bytes.
type writer struct {
	e       *sparseExtent
	zeroGTE bool // the header allows zeroed-grain entries (GTE 1)
	allocMu chan struct{}
	allocAt int64 // next grain's file offset; guarded by allocMu
	// rgd is the redundant grain directory (flag bit 1), whose tables get
	// every entry the primary tables get; nil without one.
	rgd []uint32
}

// enableWrite makes img writable when it is one uncompressed sparse
// extent whose grain tables all exist (as qemu-img and VMware create
// them). It returns false, leaving img read-only, otherwise.
func (img *Image) enableWrite() (bool, error) {
	if len(img.extents) != 1 {
		return false, nil
	}
	e, ok := img.extents[0].(*sparseExtent)
	if !ok || e.ownsFile || e.compressed || e.hdr.GDOffset == gdAtEnd {
		return false, nil
	}
	gtBytes := int64(e.hdr.NumGTEsPerGT) * 4
	if int64(len(e.gd))*gtBytes > maxPinnedTables {
		return false, nil
	}
	seen := map[uint32]bool{}
	for i, s := range e.gd {
		if s == 0 {
			return false, nil // a table would have to be allocated
		}
		if seen[s] {
			return false, corruptf("grain tables %d and another share sector %d", i, s)
		}
		seen[s] = true
	}
	e.pinned = true
	for _, s := range e.gd {
		if _, err := e.table(s); err != nil {
			return false, err
		}
	}
	fileSize := img.file.Size()
	var rgd []uint32
	if e.hdr.Flags&flagRedundantGT != 0 && e.hdr.RGDOffset != 0 {
		n := int64(len(e.gd))
		at := int64(e.hdr.RGDOffset) * sectorSize
		if e.hdr.RGDOffset > uint64(fileSize)/sectorSize || n*4 > fileSize-at {
			return false, corruptf("redundant grain directory at sector %d is outside the file", e.hdr.RGDOffset)
		}
		raw := make([]byte, n*4)
		if err := img.file.Pread(raw, at); err != nil {
			return false, err
		}
		rgd = make([]uint32, n)
		for i := range rgd {
			rgd[i] = binary.LittleEndian.Uint32(raw[i*4:])
			if rgd[i] == 0 || int64(rgd[i]) > fileSize/sectorSize || gtBytes > fileSize-int64(rgd[i])*sectorSize || seen[rgd[i]] {
				return false, corruptf("redundant grain table %d at sector %d is missing, outside the file or shared", i, rgd[i])
			}
			seen[rgd[i]] = true
		}
	}
	img.w = &writer{
		rgd:     rgd,
		e:       e,
		zeroGTE: e.hdr.Flags&flagZeroGrain != 0,
		allocMu: make(chan struct{}, 1),
		allocAt: (fileSize + sectorSize - 1) / sectorSize * sectorSize,
	}
	return true, nil
}

func (w *writer) lock()   { w.allocMu <- struct{}{} }
func (w *writer) unlock() { <-w.allocMu }

// setGTE records v as the entry of the grain holding off: in the file,
// then in the pinned table.
func (w *writer) setGTE(off int64, v uint32) error {
	e := w.e
	gtSector := e.gd[off/e.gtSize]
	idx := (off % e.gtSize) / e.grain
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	if err := e.file.Pwrite(b[:], int64(gtSector)*sectorSize+idx*4, 0); err != nil {
		return err
	}
	if w.rgd != nil {
		if err := e.file.Pwrite(b[:], int64(w.rgd[off/e.gtSize])*sectorSize+idx*4, 0); err != nil {
			return err
		}
	}
	gt, err := e.table(gtSector)
	if err != nil {
		return err
	}
	atomic.StoreUint32(&gt[idx], v)
	return nil
}

func (img *Image) writeCheck(op string, off, n int64) error {
	if img.w == nil {
		return img.readOnly(op, off, n)
	}
	return img.check(op, off, n)
}

// Pwrite stores p at off, allocating grains on first write (a partial
// grain is completed from the parent, or zeros). With FUA the file is
// flushed before it returns.
func (img *Image) Pwrite(p []byte, off int64, flags block.Flags) error {
	if err := img.writeCheck("pwrite", off, int64(len(p))); err != nil {
		return err
	}
	grain := img.w.e.grain
	for len(p) > 0 {
		chunk := min(int64(len(p)), grain-off%grain)
		if err := img.writeGrain(p[:chunk], off); err != nil {
			return &block.OpError{Op: "pwrite", Node: img.name, Off: off, Len: chunk, Err: err}
		}
		p = p[chunk:]
		off += chunk
	}
	if flags.Has(block.FUA) {
		return img.file.Flush()
	}
	return nil
}

// writeGrain writes p, inside one grain, at off.
func (img *Image) writeGrain(p []byte, off int64) error {
	w := img.w
	e := w.e
	gte, err := e.gte(off)
	if err != nil {
		return err
	}
	if gte > gteZeroed {
		return img.writeAllocated(p, off, gte)
	}
	w.lock()
	defer w.unlock()
	if gte, err = e.gte(off); err != nil {
		return err
	}
	if gte > gteZeroed {
		return img.writeAllocated(p, off, gte) // allocated meanwhile
	}
	start := off - off%e.grain
	buf := make([]byte, e.grain)
	if gte == gteUnallocated && img.parent != nil {
		if err := readParent(img.parent, buf[:min(e.grain, img.size-start)], start); err != nil {
			return err
		}
	}
	copy(buf[off-start:], p)
	host := w.allocAt
	if host/sectorSize > 0xffffffff-1 {
		return fmt.Errorf("vmdk: %w: a grain table entry cannot address sector %d", block.ErrNoSpace, host/sectorSize)
	}
	if err := e.file.Pwrite(buf, host, 0); err != nil {
		return err
	}
	w.allocAt += e.grain
	return w.setGTE(off, uint32(host/sectorSize))
}

func (img *Image) writeAllocated(p []byte, off int64, gte uint32) error {
	host := int64(gte)*sectorSize + off%img.w.e.grain
	if host+int64(len(p)) > img.file.Size() {
		return corruptf("grain at sector %d runs past the end of the file", gte)
	}
	return img.file.Pwrite(p, host, 0)
}

// WriteZeroes makes [off, off+n) read as zeros. Grains that already read
// as zeros are left alone; whole grains become zeroed-grain entries when
// the header allows them (unallocated grains over a parent always, allocated
// grains with MayUnmap); the rest gets zero bytes written (NoFallback:
// block.ErrNotSupported instead).
func (img *Image) WriteZeroes(off, n int64, flags block.Flags) error {
	if err := img.writeCheck("write-zeroes", off, n); err != nil {
		return err
	}
	w := img.w
	grain := w.e.grain
	var zeros []byte
	for o := off; o < off+n; {
		chunk := min(off+n-o, grain-o%grain)
		whole := o%grain == 0 && (chunk == grain || o+chunk == img.size)
		if err := img.zeroGrain(o, chunk, whole, flags, &zeros); err != nil {
			return &block.OpError{Op: "write-zeroes", Node: img.name, Off: o, Len: chunk, Err: err}
		}
		o += chunk
	}
	if flags.Has(block.FUA) {
		return img.file.Flush()
	}
	return nil
}

func (img *Image) zeroGrain(off, n int64, whole bool, flags block.Flags, zeros *[]byte) error {
	w := img.w
	gte, err := w.e.gte(off)
	if err != nil {
		return err
	}
	if gte == gteZeroed || (gte == gteUnallocated && img.parent == nil) {
		return nil
	}
	if whole && w.zeroGTE && (gte == gteUnallocated || flags.Has(block.MayUnmap)) {
		w.lock()
		defer w.unlock()
		return w.setGTE(off, gteZeroed)
	}
	if flags.Has(block.NoFallback) {
		return fmt.Errorf("vmdk: %w: zeroing this range writes zero bytes", block.ErrNotSupported)
	}
	if *zeros == nil {
		*zeros = make([]byte, w.e.grain)
	}
	return img.writeGrain((*zeros)[:n], off)
}

// Discard does nothing on a writable image (a hint); grains are never
// freed inside the file.
func (img *Image) Discard(off, n int64, _ block.Flags) error {
	return img.writeCheck("discard", off, n)
}

// Flush flushes the file of a writable image.
func (img *Image) Flush() error {
	if img.w == nil {
		return nil
	}
	return img.file.Flush()
}

// Caps: read-only with block status, or, for a writable monolithicSparse
// image, writes, flush, native write-zeroes (fast where no byte is
// written: NoFallback then succeeds) and block status.
func (img *Image) Caps() block.Caps {
	if img.w == nil {
		return block.Caps{BlockStatus: true}
	}
	return block.Caps{Write: true, Flush: true, WriteZeroes: true, FastZero: true, ZeroUnmap: img.w.zeroGTE, BlockStatus: true}
}
