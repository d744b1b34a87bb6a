package image

// Optional interfaces a format node may implement. Tools find them through
// the wrappers Open adds with block.As (every wrapper implements
// block.Wrapper).
type (
	// BackingFiler reports the backing file name and format recorded in
	// the image (as stored, before ResolveBacking), "" when none.
	BackingFiler interface {
		BackingFile() (name, format string)
	}
	// ClusterSizer reports the allocation unit of the format in bytes.
	ClusterSizer interface {
		ClusterSize() int64
	}
	// DirtyFlagger reports whether the image is marked dirty (qcow2 lazy
	// refcounts left unclean).
	DirtyFlagger interface {
		DirtyFlag() bool
	}
)

// SnapshotLister is implemented by formats with internal snapshots (qcow2)
// to list them for `info`.
type SnapshotLister interface {
	SnapshotList() []SnapshotInfo
}

// SnapshotInfo describes one internal snapshot, with qemu's fields.
type SnapshotInfo struct {
	ID, Name    string
	VMStateSize uint64 // bytes of saved VM state
	DateSec     int64  // creation time, Unix seconds
	DateNsec    int64  // and nanoseconds
	VMClockNsec uint64 // guest clock at creation, nanoseconds
	ICount      int64  // instruction count; -1 when not recorded
}
