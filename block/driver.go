package block

// Flags modify a single request.
type Flags uint32

const (
	// FUA (force unit access): the write is durable when the call returns.
	FUA Flags = 1 << iota
	// MayUnmap lets WriteZeroes deallocate instead of writing, provided the
	// range still reads as zeros afterwards.
	MayUnmap
	// NoFallback makes WriteZeroes fail with ErrNotSupported rather than
	// write zero bytes (NBD FAST_ZERO).
	NoFallback
)

// Has reports whether all bits of g are set in f.
func (f Flags) Has(g Flags) bool { return f&g == g }

// Status describes a run of bytes in one node.
type Status uint32

const (
	// Data: reads come from stored bytes.
	Data Status = 1 << iota
	// Zero: the run reads as zeros.
	Zero
	// Allocated: storage is reserved in this node; a write will not fail for
	// lack of space. Zero|Allocated is SCSI "anchored", Zero alone is
	// "deallocated", Data|Allocated is "mapped".
	Allocated
	// Compressed: the run is stored compressed (qcow2, vmdk
	// streamOptimized); HostOffset is then not a plain byte mapping.
	Compressed
)

// Present reports whether the run is described by this node (Data or Zero);
// a run that is not present is unallocated here and defers to the backing
// node.
func (s Status) Present() bool { return s&(Data|Zero) != 0 }

// Extent is the answer of BlockStatus: a run [Off, Off+Len) and its status.
type Extent struct {
	Off    int64
	Len    int64
	Status Status
	// HostOffset is where the run starts in the node below (the protocol
	// node's byte offset), or -1 when unknown or meaningless.
	HostOffset int64
	// Depth is set by ChainStatus: 0 for the top node, 1 for its backing
	// node, and so on. For a run unallocated in the whole chain it is the
	// depth of the last node. Drivers leave it 0.
	Depth int
}

// End returns Off+Len.
func (e Extent) End() int64 { return e.Off + e.Len }

// Caps says what a node does natively. It is fixed when the node is opened.
// Exports derive every advertised feature from Caps, never from configuration
// alone.
type Caps struct {
	Write bool // Pwrite/Discard/WriteZeroes are allowed (not read-only)
	Flush bool // Flush does something (a volatile cache exists)
	FUA   bool // FUA is honoured natively (otherwise emulated by Flush)
	// Discard: Discard may deallocate (otherwise it always does nothing).
	Discard bool
	// DiscardZeroes: a discarded range reads as zeros afterwards.
	DiscardZeroes bool
	// WriteZeroes: WriteZeroes is native (does not write zero bytes).
	WriteZeroes bool
	// FastZero: WriteZeroes with NoFallback can succeed (it is faster than
	// writing zeros); when false, NoFallback always fails.
	FastZero bool
	// ZeroUnmap: WriteZeroes with MayUnmap really deallocates.
	ZeroUnmap bool
	// BlockStatus: BlockStatus reports real allocation (otherwise everything
	// is reported as Data|Allocated).
	BlockStatus bool
}

// Limits are the request constraints of a node, in bytes. Zero means "no
// limit" for the Max fields and "not known" for the others.
type Limits struct {
	// RequestAlign is the alignment of offset and length that Pread and
	// Pwrite need (1 for byte-addressable nodes). Use Align to serve
	// unaligned callers.
	RequestAlign int64
	// PhysicalBlock is the size of the underlying physical block, for
	// exports (SCSI physical-block exponent); 0 when unknown.
	PhysicalBlock int64
	// MaxTransfer caps one Pread/Pwrite; 0 means no limit.
	MaxTransfer int64
	// OptimalTransfer is the preferred request size; 0 when unknown.
	OptimalTransfer int64
	// DiscardGranularity and DiscardAlignment: Discard only deallocates
	// whole granules at that alignment (0 = RequestAlign).
	DiscardGranularity int64
	DiscardAlignment   int64
	// MaxDiscard and MaxWriteZeroes cap one request; 0 means no limit.
	MaxDiscard     int64
	MaxWriteZeroes int64
}

// Info describes a node at the time of the call.
type Info struct {
	// Format is the driver name ("raw", "qcow2", "file", "host_device",
	// "mem", "nbd", ...).
	Format string
	// VirtualSize is the guest-visible size in bytes.
	VirtualSize int64
	// AllocatedBytes is the storage the node uses on the host, or -1 when
	// unknown.
	AllocatedBytes int64
	// Watermark is the highest allocated host offset (exclusive), or -1.
	Watermark int64
	// UnallocatedReadsZero: blocks unallocated in this node read as zeros
	// (true for a node without backing).
	UnallocatedReadsZero bool
	// ZeroUnmapDeallocates: WriteZeroes(MayUnmap) really frees storage.
	ZeroUnmapDeallocates bool
	// Specific carries format-specific fields for `info` output (e.g. a
	// *qcow2.Specific); nil when there are none.
	Specific any
}

// Driver is the contract of every node. See the package documentation for
// the rules on concurrency, buffers and errors.
type Driver interface {
	// Size returns the virtual size in bytes.
	Size() int64
	// Pread fills p from offset off. A range past Size is ErrOutOfRange.
	Pread(p []byte, off int64) error
	// Pwrite stores p at off; with FUA it is durable on return.
	Pwrite(p []byte, off int64, flags Flags) error
	// Discard is a hint that [off, off+n) is no longer needed. The node may
	// deallocate whole granules of it, or do nothing. Afterwards the range
	// reads as zeros only if Caps().DiscardZeroes.
	Discard(off, n int64, flags Flags) error
	// WriteZeroes makes [off, off+n) read as zeros. With MayUnmap the node
	// may deallocate instead. With NoFallback it returns ErrNotSupported
	// rather than writing zero bytes.
	WriteZeroes(off, n int64, flags Flags) error
	// BlockStatus returns the status of a run starting at off, with
	// 0 < Len <= n, describing this node only.
	BlockStatus(off, n int64) (Extent, error)
	// Flush makes every completed write durable.
	Flush() error
	// Close releases the node (and nodes it owns). Close does not flush.
	Close() error
	Caps() Caps
	Limits() Limits
	Info() (Info, error)
}

// Backed is implemented by nodes with a backing node (a qcow2 overlay).
// Backing returns nil when there is none.
type Backed interface {
	Backing() Driver
}
