package block

// Preallocator is implemented by nodes that can reserve storage for a
// range ahead of writing it (protocol/file: fallocate), and by nodes that
// pass the request through to one (format/raw). Copying into a fresh
// sparse file, reserving a whole data run in one call and then writing it
// costs the file system far less than allocating the run block by block
// as the writes arrive (ext4 delayed allocation), and keeps the run in one
// extent.
//
// Preallocate is a hint. It never changes what any byte reads, the node's
// Size, or the outcome of later requests; a node that cannot reserve (a
// block device, a file system without fallocate) does nothing and returns
// nil. The range must lie within Size. An error (no space) means nothing
// more than that a write of the range may fail the same way.
//
// Callers reserve only ranges they are about to write whole: a reserved
// range that is never written stays allocated (it reads zeros and reports
// Zero|Allocated).
type Preallocator interface {
	Preallocate(off, length int64) error
}
