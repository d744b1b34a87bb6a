package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
)

// Image is an open qcow2 image. It implements block.Driver and
// block.Backed.
type Image struct {
	file     block.Driver
	prealloc block.Preallocator // the file's reservation hint, or nil
	name     string
	backing  block.Driver
	readOnly bool

	clusterBits uint32
	clusterSize int64
	l2Entries   int64 // entries per L2 table
	l2EntrySize int64
	rbEntries   int64 // entries per refcount block
	format      l2Format
	units       int          // units (subclusters) per cluster: 1 or 32
	unitSize    int64        // clusterSize / units
	size        atomic.Int64 // virtual size (changes only in Resize)

	ranges *rangeLock
	// ioSlots bounds the guest data requests in flight to the file node:
	// past a handful, concurrent writers to one file only contend in the
	// kernel (option "data-io-depth", default 8).
	ioSlots chan struct{}

	// mu guards everything below: the header, the L1 and refcount tables,
	// both caches, the allocator and the list of pending frees. It is never
	// held across guest data I/O, except in Flush (which must see a stable
	// set of L2 entries).
	mu                sync.Mutex
	hdr               *Header
	l1                []uint64
	l1Dirty           bool
	rt                []uint64 // refcount table
	rtDirty           bool
	l2Cache           *tableCache
	rbCache           *tableCache
	freeHint          int64 // no free cluster below this index
	highWater         int64 // no cluster at or above this index is in use
	pendingFree       []freeRange
	snapshots         []Snapshot
	snapshotSel       map[string]string // snapshot open options (read-only view)
	snapshotTableSize int64
	closed            bool
	// compressed cluster writer state: the next free byte in the current
	// partially used cluster, 0 when none.
	compNext int64
	// meta: QEMU's preallocated-metadata heuristic (prealloc_detect.go).
	meta metaPrealloc

	keepDirty bool // OptionKeepDirty, set at open
	// dirtyPending: opened writable with the dirty bit kept; mutating
	// requests fail until Check(RepairAll) clears it.
	dirtyPending atomic.Bool
	// autoclearPending: the header's autoclear bits are still set and are
	// to be cleared before the first change of guest data.
	autoclearPending atomic.Bool
}

// freeRange is a reference to drop at the next flush: count clusters from
// cluster index first.
type freeRange struct {
	first, count int64
}

// checkWritable returns why the image cannot be changed now, or nil.
func (img *Image) checkWritable() error {
	switch {
	case img.readOnly:
		return block.ErrReadOnly
	case img.dirtyPending.Load():
		return fmt.Errorf("%w: qcow2: the image is dirty (refcounts may be stale); repair it with check -r all first", block.ErrCorrupt)
	}
	return nil
}

// acquireIO and releaseIO bracket guest data I/O to the file node.
func (img *Image) acquireIO() { img.ioSlots <- struct{}{} }
func (img *Image) releaseIO() { <-img.ioSlots }

// Probe recognises the qcow2 magic.
func Probe(head []byte) int {
	if len(head) >= 8 && string(head[:4]) == Magic {
		v := binary.BigEndian.Uint32(head[4:])
		if v == 2 || v == 3 {
			return 100
		}
	}
	return 0
}

func init() {
	image.Register(image.Format{
		Name:   "qcow2",
		Probe:  Probe,
		Open:   func(file block.Driver, o image.FormatOpen) (block.Driver, error) { return Open(file, o) },
		Create: Create,
	})
}

// Open opens the qcow2 image stored in file. On success the image owns
// file; on failure the caller closes it. Options: "l2-cache-size" and
// "refcount-cache-size" (bytes of cached tables).
//
// An image with the dirty bit set (left by a crash with lazy refcounts) has
// its refcounts rebuilt before it is used when it is opened writable.
func Open(file block.Driver, o image.FormatOpen) (*Image, error) {
	img, err := openImage(file, o)
	if err != nil {
		return nil, &block.OpError{Op: "open", Node: o.Name, Err: err}
	}
	return img, nil
}

func openImage(file block.Driver, o image.FormatOpen) (*Image, error) {
	fileSize := file.Size()
	head := make([]byte, min(fileSize, 1<<maxClusterBits))
	if len(head) < v2HeaderLength {
		return nil, corruptf("image too short for a header (%d bytes)", len(head))
	}
	if err := file.Pread(head[:v2HeaderLength], 0); err != nil {
		return nil, err
	}
	if string(head[:4]) == Magic {
		bits := binary.BigEndian.Uint32(head[20:])
		if bits >= minClusterBits && bits <= maxClusterBits {
			head = head[:min(int64(len(head)), int64(1)<<bits)]
		}
	}
	if err := file.Pread(head, 0); err != nil {
		return nil, err
	}
	h, err := parseHeader(head, fileSize)
	if err != nil {
		return nil, err
	}
	readOnly := o.ReadOnly || !file.Caps().Write
	if h.IncompatibleFeatures&IncompatCorrupt != 0 && !readOnly {
		return nil, fmt.Errorf("%w: qcow2: image is marked corrupt; open it read-only or repair it with check -r all", block.ErrCorrupt)
	}
	img := &Image{
		file:        file,
		name:        o.Name,
		readOnly:    readOnly,
		hdr:         h,
		ranges:      newRangeLock(),
		clusterBits: h.ClusterBits,
		clusterSize: h.ClusterSize(),
		l2Entries:   h.l2Entries(),
		l2EntrySize: h.l2EntrySize(),
		rbEntries:   h.ClusterSize() * 8 / int64(h.RefcountBits()),
		format:      l2Format{clusterBits: h.ClusterBits, extended: h.ExtendedL2(), v3: h.Version >= 3},
	}
	img.size.Store(int64(h.Size))
	img.snapshotSel = map[string]string{}
	if img.clusterSize >= 64<<10 { // see reserve
		img.prealloc, _ = block.As[block.Preallocator](file)
	}
	img.units = img.format.units()
	img.unitSize = img.clusterSize / int64(img.units)
	img.highWater = (fileSize + img.clusterSize - 1) >> img.clusterBits
	if err := img.configureCaches(o.Options); err != nil {
		return nil, err
	}
	if err := img.loadTables(); err != nil {
		return nil, err
	}
	if err := img.loadSnapshots(); err != nil {
		return nil, err
	}
	if len(img.snapshotSel) > 0 {
		if !readOnly {
			return nil, fmt.Errorf("%w: qcow2: an internal snapshot can only be opened read-only", block.ErrInvalid)
		}
		if err := img.viewSnapshot(); err != nil {
			return nil, err
		}
	}
	if !readOnly {
		if err := img.prepareWrite(); err != nil {
			return nil, err
		}
	}
	if h.BackingFile != "" && !o.NoBacking {
		if o.OpenBacking == nil {
			return nil, fmt.Errorf("%w: qcow2: image has backing file %q but no way to open it", block.ErrInvalid, h.BackingFile)
		}
		b, err := o.OpenBacking(h.BackingFile, h.BackingFormat)
		if err != nil {
			return nil, fmt.Errorf("qcow2: opening backing file %q: %w", h.BackingFile, err)
		}
		img.backing = b
	}
	return img, nil
}

func (img *Image) configureCaches(opts map[string]string) error {
	cs := img.clusterSize
	// By default cache every L2 table of the disk up to 32 MiB of tables,
	// and a quarter of that for refcount blocks.
	l2Bytes := min(((img.size.Load()/(img.l2Entries*cs))+1)*cs, 32<<20)
	rbBytes := max(l2Bytes/4, 4*cs)
	ioDepth := int64(8)
	for k, v := range opts {
		if k == OptionSnapshot || k == OptionSnapshotID || k == OptionSnapshotName {
			img.snapshotSel[k] = v
			continue
		}
		if k == OptionKeepDirty {
			b, err := parseBool(v)
			if err != nil {
				return fmt.Errorf("%w: qcow2: option %s=%q is not on or off", block.ErrInvalid, k, v)
			}
			img.keepDirty = b
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: qcow2: option %s=%q is not a byte count", block.ErrInvalid, k, v)
		}
		switch k {
		case "l2-cache-size":
			l2Bytes = n
		case "refcount-cache-size":
			rbBytes = n
		case "data-io-depth":
			ioDepth = max(n, 1)
		default:
			return fmt.Errorf("%w: qcow2: unknown option %q", block.ErrInvalid, k)
		}
	}
	img.ioSlots = make(chan struct{}, min(ioDepth, 1024))
	img.l2Cache = newTableCache(int(cs), int(min(l2Bytes/cs, 1<<20)), img.loadTable, img.writeL2Locked)
	img.rbCache = newTableCache(int(cs), int(min(rbBytes/cs, 1<<20)), img.loadTable, img.writeTable)
	return nil
}

// loadTable reads one metadata cluster, refusing offsets past the end of
// the file.
func (img *Image) loadTable(off int64, p []byte) error {
	if off <= 0 || off%img.clusterSize != 0 {
		return corruptf("metadata table at unaligned offset 0x%x", off)
	}
	if end := img.file.Size(); off >= end {
		return corruptf("metadata table at 0x%x past end of file (%d bytes)", off, end)
	} else if off+int64(len(p)) > end {
		// The last cluster of a file may be short; the rest reads as zeros.
		clear(p)
		return img.file.Pread(p[:end-off], off)
	}
	return img.file.Pread(p, off)
}

func (img *Image) writeTable(off int64, p []byte) error {
	return img.file.Pwrite(p, off, 0)
}

// writeL2Locked writes back an L2 table. Refcount increases for the
// clusters it points at, and their data, must be durable first.
//
// Preconditions: img.mu held.
func (img *Image) writeL2Locked(off int64, p []byte) error {
	if err := img.writeRefcountsLocked(); err != nil {
		return err
	}
	return img.file.Pwrite(p, off, 0)
}

// writeRefcountsLocked writes dirty refcount blocks and the refcount
// table, each followed by a file flush, so that metadata written after it
// may point at the clusters they count.
//
// Preconditions: img.mu held.
func (img *Image) writeRefcountsLocked() error {
	if !img.rbCache.hasDirty() && !img.rtDirty {
		return img.file.Flush() // data written before L2 entries pointing at it
	}
	if err := img.rbCache.flush(); err != nil {
		return err
	}
	if err := img.file.Flush(); err != nil {
		return err
	}
	if img.rtDirty {
		if err := img.file.Pwrite(encodeTable(img.rt), int64(img.hdr.RefcountTableOffset), 0); err != nil {
			return err
		}
		img.rtDirty = false
		if err := img.file.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func encodeTable(t []uint64) []byte {
	b := make([]byte, 8*len(t))
	for i, v := range t {
		binary.BigEndian.PutUint64(b[8*i:], v)
	}
	return b
}

func (img *Image) readTable(off int64, n int64) ([]uint64, error) {
	b := make([]byte, 8*n)
	if err := img.file.Pread(b, off); err != nil {
		return nil, err
	}
	t := make([]uint64, n)
	for i := range t {
		t[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return t, nil
}

// loadTables reads the L1 and refcount tables (their sizes were checked
// against the file size by parseHeader).
func (img *Image) loadTables() error {
	h := img.hdr
	var err error
	if img.l1, err = img.readTable(int64(h.L1TableOffset), int64(h.L1Size)); err != nil {
		return err
	}
	rtLen := int64(h.RefcountTableClusters) * img.clusterSize / 8
	if img.rt, err = img.readTable(int64(h.RefcountTableOffset), rtLen); err != nil {
		return err
	}
	for i, e := range img.l1 {
		if e&l1ReservedMask != 0 || (e&entryOffsetMask)%uint64(img.clusterSize) != 0 {
			return corruptf("L1 entry %d (0x%x) is invalid", i, e)
		}
	}
	for i, e := range img.rt {
		if e&0x1ff != 0 || e%uint64(img.clusterSize) != 0 {
			return corruptf("refcount table entry %d (0x%x) is invalid", i, e)
		}
		if e != 0 {
			if int64(e) >= img.file.Size() {
				return corruptf("refcount block %d at 0x%x is past end of file", i, e)
			}
			img.highWater = max(img.highWater, int64(e>>img.clusterBits)+1)
		}
	}
	return nil
}

// writeHeaderLocked rewrites the header cluster and flushes.
//
// Preconditions: img.mu held (or the image not yet shared).
func (img *Image) writeHeaderLocked() error {
	b, err := img.hdr.encode()
	if err != nil {
		return err
	}
	if err := img.file.Pwrite(b, 0, 0); err != nil {
		return err
	}
	return img.file.Flush()
}

// Size returns the virtual size in bytes.
func (img *Image) Size() int64 { return img.size.Load() }

// Backing returns the backing node, or nil.
func (img *Image) Backing() block.Driver { return img.backing }

// Header returns a copy of the decoded header.
func (img *Image) Header() Header {
	img.mu.Lock()
	defer img.mu.Unlock()
	return *img.hdr
}

// Caps reports what the image does natively (see the package
// documentation for the zero and discard policy).
func (img *Image) Caps() block.Caps {
	w := !img.readOnly
	v3 := img.hdr.Version >= 3
	native := w && (v3 || img.backing == nil)
	return block.Caps{
		Write:   w,
		Flush:   true,
		FUA:     false,
		Discard: native,
		// Whole discarded clusters read as zeros, but a partial cluster
		// is left as it is (discard is a hint), so the range as a whole
		// does not.
		DiscardZeroes: false,
		WriteZeroes:   native,
		FastZero:      native,
		ZeroUnmap:     native,
		BlockStatus:   true,
	}
}

// Limits reports request constraints: any alignment works; discard works
// on whole clusters.
func (img *Image) Limits() block.Limits {
	return block.Limits{
		RequestAlign:       1,
		OptimalTransfer:    img.clusterSize,
		DiscardGranularity: img.clusterSize,
		DiscardAlignment:   img.clusterSize,
	}
}

// Specific is the qcow2 part of Info, for `info` output (the JSON names
// are qemu-img info's "format-specific" data).
type Specific struct {
	Compat          string `json:"compat"`
	CompressionType string `json:"compression-type"`
	LazyRefcounts   bool   `json:"lazy-refcounts"`
	RefcountBits    int    `json:"refcount-bits"`
	Corrupt         bool   `json:"corrupt"`
	ExtendedL2      bool   `json:"extended-l2"`
	ClusterSize     int64  `json:"-"`
	Dirty           bool   `json:"-"`
	BackingFile     string `json:"-"`
	BackingFormat   string `json:"-"`
}

// HumanFields returns qemu-img info's "Format specific information" lines.
func (s *Specific) HumanFields() [][2]string {
	f := [][2]string{
		{"compat", s.Compat},
		{"compression type", s.CompressionType},
		{"lazy refcounts", strconv.FormatBool(s.LazyRefcounts)},
		{"refcount bits", strconv.Itoa(s.RefcountBits)},
		{"corrupt", strconv.FormatBool(s.Corrupt)},
		{"extended l2", strconv.FormatBool(s.ExtendedL2)},
	}
	return f
}

// ClusterSize returns the cluster size in bytes.
func (img *Image) ClusterSize() int64 { return img.clusterSize }

// DirtyFlag reports whether the header's dirty bit is set.
func (img *Image) DirtyFlag() bool {
	img.mu.Lock()
	defer img.mu.Unlock()
	return img.hdr.IncompatibleFeatures&IncompatDirty != 0
}

// BackingFile returns the backing file name and format recorded in the
// header.
func (img *Image) BackingFile() (name, format string) {
	img.mu.Lock()
	defer img.mu.Unlock()
	return img.hdr.BackingFile, img.hdr.BackingFormat
}

// Info describes the image.
func (img *Image) Info() (block.Info, error) {
	img.mu.Lock()
	h := img.hdr
	sp := &Specific{
		Compat:          "1.1",
		ClusterSize:     img.clusterSize,
		RefcountBits:    int(h.RefcountBits()),
		LazyRefcounts:   h.CompatibleFeatures&CompatLazyRefcounts != 0,
		ExtendedL2:      h.ExtendedL2(),
		CompressionType: "zlib",
		Corrupt:         h.IncompatibleFeatures&IncompatCorrupt != 0,
		Dirty:           h.IncompatibleFeatures&IncompatDirty != 0,
		BackingFile:     h.BackingFile,
		BackingFormat:   h.BackingFormat,
	}
	if h.Version < 3 {
		sp.Compat = "0.10"
	}
	if h.CompressionType == CompressionZstd {
		sp.CompressionType = "zstd"
	}
	watermark := img.highWater << img.clusterBits
	size := img.size.Load()
	img.mu.Unlock()
	allocated := int64(-1)
	if fi, err := img.file.Info(); err == nil {
		allocated = fi.AllocatedBytes
	}
	return block.Info{
		Format:               "qcow2",
		VirtualSize:          size,
		AllocatedBytes:       allocated,
		Watermark:            watermark,
		UnallocatedReadsZero: img.backing == nil,
		ZeroUnmapDeallocates: img.Caps().ZeroUnmap,
		Specific:             sp,
	}, nil
}

// Flush writes back all metadata in crash-safe order and flushes the file:
// refcount increases (and the data written before them), then L2 tables,
// then the L1 table, then refcount decreases for freed clusters.
func (img *Image) Flush() error {
	if img.readOnly {
		return nil
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	if img.closed {
		return block.ErrClosed
	}
	if err := img.flushLocked(); err != nil {
		return &block.OpError{Op: "flush", Node: img.name, Err: err}
	}
	return nil
}

// flushLocked is Flush. Preconditions: img.mu held.
func (img *Image) flushLocked() error {
	if err := img.writeRefcountsLocked(); err != nil {
		return err
	}
	if img.l2Cache.hasDirty() {
		if err := img.l2Cache.flush(); err != nil {
			return err
		}
		if err := img.file.Flush(); err != nil {
			return err
		}
	}
	if img.l1Dirty {
		if err := img.file.Pwrite(encodeTable(img.l1), int64(img.hdr.L1TableOffset), 0); err != nil {
			return err
		}
		img.l1Dirty = false
		if err := img.file.Flush(); err != nil {
			return err
		}
	}
	if len(img.pendingFree) > 0 {
		if err := img.applyFreesLocked(); err != nil {
			return err
		}
		if err := img.rbCache.flush(); err != nil {
			return err
		}
		return img.file.Flush()
	}
	return nil
}

// Close writes back metadata (as Flush) and closes the file and the
// backing node. The image is unusable afterwards.
func (img *Image) Close() error {
	img.mu.Lock()
	if img.closed {
		img.mu.Unlock()
		return block.ErrClosed
	}
	var err error
	if !img.readOnly {
		err = img.flushLocked()
	}
	img.closed = true
	img.mu.Unlock()
	if e := img.file.Close(); err == nil {
		err = e
	}
	if img.backing != nil {
		if e := img.backing.Close(); err == nil {
			err = e
		}
	}
	if err != nil {
		return &block.OpError{Op: "close", Node: img.name, Err: err}
	}
	return nil
}

// opError wraps err for a request, keeping it nil when err is nil.
func (img *Image) opError(op string, off, n int64, err error) error {
	if err == nil {
		return nil
	}
	var oe *block.OpError
	if errors.As(err, &oe) && oe.Node == img.name {
		return err
	}
	return &block.OpError{Op: op, Node: img.name, Off: off, Len: n, Err: err}
}
