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
