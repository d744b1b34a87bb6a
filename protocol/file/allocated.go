package file

// AllocatedBytes returns the bytes the file occupies on the host
// (st_blocks*512), or -1 for a block device: Info's AllocatedBytes without
// the watermark walk (format/qcow2 asks it for QEMU's
// metadata-preallocation heuristic).
func (n *Node) AllocatedBytes() (int64, error) {
	if n.isDevice {
		return -1, nil
	}
	a, err := allocatedBytes(n.f)
	if err != nil {
		return 0, n.opError("info", 0, 0, err)
	}
	return a, nil
}
