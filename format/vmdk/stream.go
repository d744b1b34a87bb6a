package vmdk

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/thinblk/thinblk/block"
)

// streamWriter writes a streamOptimized disk front to back: each grain is
// compressed and appended behind a grain marker once the writer moves past
// it; Flush (and Close) append the grain tables, grain directory, footer
// and end-of-stream marker after the grains.
//
// # How to drive it
//
// Writes (Pwrite, WriteZeroes) must come in increasing offset order at
// grain granularity: a write may touch the grain being buffered or any
// later grain, never an earlier one (block.ErrNotSupported). Skipped
// ranges stay unallocated and read as zeros. thinblk convert does this by
// default (one write at a time, in target order, requests aligned to
// ClusterSize); `convert -W` (out of order) does not work with this
// target. Flush does not restrict later writes (see flushLocked).
// All-zero grains are not stored.
//
// All calls are serialized by one mutex.
type streamWriter struct {
	file  block.Driver
	name  string
	hdr   SparseHeader
	size  int64
	grain int64

	mu sync.Mutex // guards everything below
	// gtes maps the index of each stored grain to the sector of its
	// marker (memory follows the data, not the virtual size).
	gtes map[int64]uint32
	// sealed is the number of grains that can no longer change.
	sealed int64
	// cur is the buffered grain (-1: none), buf its bytes.
	cur int64
	buf []byte
	// appendAt is where the next grain goes in the file (sector aligned);
	// the tail is written there too and overwritten by the next grain.
	appendAt int64
	// tailValid: the tail in the file describes every sealed grain.
	tailValid bool
	closed    bool
}

var _ block.Driver = (*streamWriter)(nil)

// openStreamWriter returns a writer for the empty streamOptimized disk in
// file whose (footer) header is h, or nil when the disk is not one thinblk
// can append to (it already has grains, or a layout other than a stream).
func openStreamWriter(file block.Driver, name string, h *SparseHeader, e *sparseExtent) (*streamWriter, error) {
	if h.Flags&(flagCompressed|flagMarkers) != flagCompressed|flagMarkers || h.OverHead == 0 {
		return nil, nil
	}
	for _, gd := range e.gd {
		if gd != 0 {
			return nil, nil // grains present: read-only
		}
	}
	appendAt := int64(h.OverHead) * sectorSize
	if appendAt > file.Size() {
		return nil, corruptf("stream overhead of %d sectors is past the end of the file", h.OverHead)
	}
	return &streamWriter{
		file: file, name: name, hdr: *h, size: int64(h.Capacity) * sectorSize, grain: h.grainBytes(),
		gtes: map[int64]uint32{}, cur: -1, appendAt: appendAt, tailValid: true,
	}, nil
}

func (w *streamWriter) opErr(op string, off, n int64, err error) error {
	return &block.OpError{Op: op, Node: w.name, Off: off, Len: n, Err: err}
}

// Size returns the virtual size in bytes.
func (w *streamWriter) Size() int64 { return w.size }

// ClusterSize returns the grain size: the unit writes should come in.
func (w *streamWriter) ClusterSize() int64 { return w.grain }

// Pwrite buffers p into the grains at off, sealing (compressing and
// appending) the buffered grain when the write moves past it.
func (w *streamWriter) Pwrite(p []byte, off int64, flags block.Flags) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.seekLocked("pwrite", off, int64(len(p))); err != nil {
		return err
	}
	for len(p) > 0 {
		g := off / w.grain
		if g != w.cur {
			if err := w.sealLocked(); err != nil {
				return w.opErr("pwrite", off, int64(len(p)), err)
			}
			w.cur, w.sealed = g, g
			if w.buf == nil {
				w.buf = make([]byte, w.grain)
			}
			clear(w.buf)
		}
		n := copy(w.buf[off%w.grain:], p)
		p = p[n:]
		off += int64(n)
	}
	if flags.Has(block.FUA) {
		return w.flushLocked()
	}
	return nil
}

// PwriteCompressed is Pwrite: every grain is compressed anyway (convert -c).
func (w *streamWriter) PwriteCompressed(p []byte, off int64) error { return w.Pwrite(p, off, 0) }

// seekLocked checks that a request at off may still be written.
// Preconditions: w.mu is held.
func (w *streamWriter) seekLocked(op string, off, n int64) error {
	if w.closed {
		return w.opErr(op, off, n, block.ErrClosed)
	}
	if err := block.CheckRange(off, n, w.size); err != nil {
		return w.opErr(op, off, n, err)
	}
	if g := off / w.grain; g < w.sealed {
		return w.opErr(op, off, n, fmt.Errorf("vmdk: %w: streamOptimized is written front to back; offset %d is in a grain already written (next writable offset %d)",
			block.ErrNotSupported, off, w.sealed*w.grain))
	}
	return nil
}

// sealLocked compresses and appends the buffered grain (nothing for an
// all-zero grain); the grain can no longer change.
// Preconditions: w.mu is held.
func (w *streamWriter) sealLocked() error {
	if w.cur < 0 {
		return nil
	}
	g := w.cur
	w.cur = -1
	w.sealed = g + 1
	if isZero(w.buf) {
		return nil
	}
	n, err := w.appendGrainLocked(g)
	if err != nil {
		return err
	}
	w.appendAt += n
	w.tailValid = false
	return nil
}

// appendGrainLocked writes grain g from w.buf, compressed behind its grain
// marker, at appendAt, records it in gtes and returns the bytes written
// (whole sectors). It does not move appendAt.
// Preconditions: w.mu is held.
func (w *streamWriter) appendGrainLocked(g int64) (int64, error) {
	var z bytes.Buffer
	z.Write(make([]byte, 12)) // the grain marker, filled below
	zw, _ := zlib.NewWriterLevel(&z, zlib.DefaultCompression)
	zw.Write(w.buf)
	if err := zw.Close(); err != nil {
		return 0, err
	}
	b := z.Bytes()
	binary.LittleEndian.PutUint64(b, uint64(g*w.grain/sectorSize))
	binary.LittleEndian.PutUint32(b[8:], uint32(len(b)-12))
	if pad := len(b) % sectorSize; pad != 0 {
		b = append(b, make([]byte, sectorSize-pad)...)
	}
	sector := w.appendAt / sectorSize
	if sector > 0xffffffff-1 {
		return 0, fmt.Errorf("vmdk: %w: a grain table entry cannot address sector %d", block.ErrNoSpace, sector)
	}
	if err := w.file.Pwrite(b, w.appendAt, 0); err != nil {
		return 0, err
	}
	w.gtes[g] = uint32(sector)
	return int64(len(b)), nil
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// writeTailLocked writes, at appendAt, the grain tables that have grains,
// the grain directory, the footer and the end-of-stream marker.
// Preconditions: w.mu is held (or w is not shared).
func (w *streamWriter) writeTailLocked() error {
	h := w.hdr
	perGT := int64(h.NumGTEsPerGT)
	gtBytes := roundSector(perGT * 4)
	gdEntries := int64(h.numGDEs())
	var tail []byte
	at := w.appendAt
	gd := make([]byte, roundSector(gdEntries*4))
	usedGT := map[int64]bool{}
	for g := range w.gtes {
		usedGT[g/perGT] = true
	}
	for i := int64(0); i < gdEntries; i++ {
		lo := i * perGT
		if !usedGT[i] {
			continue
		}
		tail = append(tail, markerSector(uint64(gtBytes/sectorSize), markerGT)...)
		binary.LittleEndian.PutUint32(gd[i*4:], uint32((at+int64(len(tail)))/sectorSize))
		gt := make([]byte, gtBytes)
		for j := range perGT {
			binary.LittleEndian.PutUint32(gt[j*4:], w.gtes[lo+j])
		}
		tail = append(tail, gt...)
	}
	tail = append(tail, markerSector(uint64(len(gd)/sectorSize), markerGD)...)
	h.GDOffset = uint64((at + int64(len(tail))) / sectorSize)
	tail = append(tail, gd...)
	tail = append(tail, markerSector(1, markerFooter)...)
	footer := make([]byte, headerSize)
	h.encode(footer)
	tail = append(tail, footer...)
	tail = append(tail, make([]byte, sectorSize)...) // end of stream
	if err := w.file.Pwrite(tail, at, 0); err != nil {
		return err
	}
	// The footer must be the end of the file: cut what an earlier, longer
	// tail (or a provisional grain) left behind it.
	if end := at + int64(len(tail)); w.file.Size() > end {
		t, ok := block.As[truncater](w.file)
		if !ok {
			return fmt.Errorf("vmdk: %w: cannot shorten the file to end the stream", block.ErrNotSupported)
		}
		if err := t.Truncate(end); err != nil {
			return err
		}
	}
	w.tailValid = true
	return nil
}

// truncater is what file nodes offer for resizing (protocol/file,
// protocol/mem).
type truncater interface {
	Truncate(size int64) error
}

func roundSector(n int64) int64 { return (n + sectorSize - 1) / sectorSize * sectorSize }

// markerSector is a metadata marker (size 0) of the given type whose value
// is the number of sectors of metadata that follow it.
func markerSector(sectors uint64, typ uint32) []byte {
	b := make([]byte, sectorSize)
	binary.LittleEndian.PutUint64(b, sectors)
	binary.LittleEndian.PutUint32(b[12:], typ)
	return b
}

// flushLocked makes the file a complete disk holding every write so far:
// a buffered grain with data is written provisionally (compressed at
// appendAt, described by the tail after it) but stays buffered, so later
// writes may still change it; sealing it later writes it again in the same
// place, over the old tail.
// Preconditions: w.mu is held.
func (w *streamWriter) flushLocked() error {
	if w.cur >= 0 && !isZero(w.buf) {
		n, err := w.appendGrainLocked(w.cur)
		if err != nil {
			return err
		}
		saved := w.appendAt
		w.appendAt += n
		err = w.writeTailLocked()
		w.appendAt = saved
		delete(w.gtes, w.cur)
		w.tailValid = false // the tail lists a grain that is still buffered
		if err != nil {
			return err
		}
	} else if !w.tailValid {
		if err := w.writeTailLocked(); err != nil {
			return err
		}
	}
	return w.file.Flush()
}

// Flush writes the tail (and the buffered grain, provisionally): the file
// is then a complete streamOptimized disk holding every write so far.
func (w *streamWriter) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.opErr("flush", 0, 0, block.ErrClosed)
	}
	if err := w.flushLocked(); err != nil {
		return w.opErr("flush", 0, 0, err)
	}
	return nil
}

// WriteZeroes makes [off, off+n) read as zeros: in the buffered grain it
// clears bytes; later grains are skipped (they are unallocated), and so are
// sealed grains that were never stored. A sealed grain with data fails
// with block.ErrNotSupported.
func (w *streamWriter) WriteZeroes(off, n int64, flags block.Flags) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.opErr("write-zeroes", off, n, block.ErrClosed)
	}
	if err := block.CheckRange(off, n, w.size); err != nil {
		return w.opErr("write-zeroes", off, n, err)
	}
	for o := off; o < off+n && o/w.grain < w.sealed; o += w.grain - o%w.grain {
		if g := o / w.grain; g != w.cur && w.gtes[g] != 0 {
			return w.seekLocked("write-zeroes", o, off+n-o)
		}
	}
	if w.cur >= 0 && w.cur*w.grain < off+n && off < (w.cur+1)*w.grain {
		lo := max(off, w.cur*w.grain) - w.cur*w.grain
		hi := min(off+n, (w.cur+1)*w.grain) - w.cur*w.grain
		clear(w.buf[lo:hi])
	}
	if flags.Has(block.FUA) {
		return w.flushLocked()
	}
	return nil
}

// Discard does nothing (a hint).
func (w *streamWriter) Discard(off, n int64, _ block.Flags) error { return nil }

// Pread reads what has been written: the buffered grain from memory,
// sealed grains by decompressing them, the rest as zeros.
func (w *streamWriter) Pread(p []byte, off int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := block.CheckRange(off, int64(len(p)), w.size); err != nil {
		return w.opErr("pread", off, int64(len(p)), err)
	}
	for len(p) > 0 {
		g := off / w.grain
		within := off % w.grain
		chunk := min(int64(len(p)), w.grain-within)
		switch {
		case g == w.cur:
			copy(p[:chunk], w.buf[within:])
		case w.gtes[g] != 0:
			data, err := inflateGrain(w.file, w.file.Size(), int64(w.gtes[g])*sectorSize, w.grain, true)
			if err != nil {
				return w.opErr("pread", off, chunk, err)
			}
			copy(p[:chunk], data[within:])
		default:
			clear(p[:chunk])
		}
		p = p[chunk:]
		off += chunk
	}
	return nil
}

// BlockStatus: written grains are Data|Allocated (Compressed once sealed),
// the rest unallocated.
func (w *streamWriter) BlockStatus(off, n int64) (block.Extent, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := block.CheckRange(off, n, w.size); err != nil || n == 0 {
		if err == nil {
			err = fmt.Errorf("%w: zero length", block.ErrInvalid)
		}
		return block.Extent{}, w.opErr("block-status", off, n, err)
	}
	kind := func(g int64) block.Status {
		switch {
		case g == w.cur:
			return block.Data | block.Allocated
		case w.gtes[g] != 0:
			return block.Data | block.Allocated | block.Compressed
		}
		return 0
	}
	st := kind(off / w.grain)
	end := min(off-off%w.grain+w.grain, off+n)
	for i := 0; end < off+n && kind(end/w.grain) == st && i < maxRunGrains; i++ {
		end = min(end+w.grain, off+n)
	}
	return block.Extent{Off: off, Len: end - off, Status: st, HostOffset: -1}, nil
}

// Close writes the tail if writes came after the last Flush (an
// unfinished stream is useless), then closes the file. It does not flush
// the file's cache.
func (w *streamWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.sealLocked()
	if err == nil && !w.tailValid {
		err = w.writeTailLocked()
	}
	if cerr := w.file.Close(); err == nil {
		err = cerr
	}
	return err
}

// Caps: sequential writes with flush; WriteZeroes never writes bytes.
func (w *streamWriter) Caps() block.Caps {
	return block.Caps{Write: true, Flush: true, WriteZeroes: true, BlockStatus: true}
}

// Limits: byte-addressable, a grain is the optimal transfer.
func (w *streamWriter) Limits() block.Limits {
	return block.Limits{RequestAlign: 1, OptimalTransfer: w.grain}
}

// Info describes the disk being written.
func (w *streamWriter) Info() (block.Info, error) {
	fi, err := w.file.Info()
	if err != nil {
		return block.Info{}, err
	}
	return block.Info{
		Format: "vmdk", VirtualSize: w.size, AllocatedBytes: fi.AllocatedBytes, Watermark: fi.Watermark,
		UnallocatedReadsZero: true,
		Specific: &Specific{CID: 0xffffffff, ParentCID: 0xffffffff, CreateType: "streamOptimized",
			Extents: []ExtentInfo{{VirtualSize: w.size, Filename: w.name, ClusterSize: w.grain, Compressed: true}}},
	}, nil
}
