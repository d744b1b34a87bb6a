// Package file is the protocol node over a host file: a regular file or a
// block device, opened with [Open] and created with [Create].
//
// # Regular files
//
// Reads and writes are pread/pwrite; FUA is a write followed by fdatasync.
// Discard punches a hole (fallocate PUNCH_HOLE|KEEP_SIZE), which leaves
// zeros, so Caps().DiscardZeroes holds. WriteZeroes uses fallocate
// ZERO_RANGE, or PUNCH_HOLE when MayUnmap lets it deallocate; where the
// filesystem has neither it writes zero bytes (unless NoFallback). BlockStatus
// comes from lseek SEEK_DATA/SEEK_HOLE: data is Data|Allocated, a hole is
// Zero (deallocated), and HostOffset is the offset itself. This matches
// `qemu-img map -f raw` extent for extent within the file's size (qemu rounds
// the size up to 512 bytes and reports the rounded tail as zero). Note that
// SEEK_DATA reports fallocated but never written ranges as holes on ext4 and
// xfs, so they show as Zero although st_blocks counts them.
//
// # Block devices
//
// The size comes from BLKGETSIZE64, the block sizes from BLKSSZGET and
// BLKPBSZGET, and the discard and write-zeroes limits from
// /sys/dev/block/MAJ:MIN/queue. Discard is BLKDISCARD, which does not promise
// zeros (DESIGN.md rule 6), so Caps().DiscardZeroes is false. WriteZeroes is
// BLKZEROOUT, or fallocate PUNCH_HOLE on the device with MayUnmap (the kernel
// then zeroes without writing, possibly unmapping). BlockStatus reports
// everything as Data|Allocated.
//
// # Unsupported operations
//
// When the kernel answers EOPNOTSUPP to a fallocate mode or an ioctl, the node
// remembers it and does not try again: later requests take the fallback (or
// fail with block.ErrNotSupported under NoFallback) at once.
//
// # Direct I/O
//
// With Options.Direct the file is opened with O_DIRECT (cache=none). Limits
// then report the required alignment as RequestAlign. Requests whose
// offset and length are aligned bypass the page cache; the caller's buffer
// need not be aligned in memory (an aligned bounce buffer is used when it is
// not). Requests that are not aligned — including the tail of a file whose
// size is not a multiple of the alignment — are served through a second,
// buffered descriptor, so they work but go through the page cache. Wrap the
// node with block.Align to turn them into aligned read-modify-write cycles
// instead.
//
// # Growth
//
// The size of a node is fixed at Open. Formats that append to their file
// (qcow2 allocates clusters at its end) open it with Options.Growable: a
// Pwrite that ends past Size then extends the file and the node. Everything
// else still stops at Size. [Node.Truncate] sets the size explicitly.
//
// # Locking
//
// Open takes QEMU-compatible image locks (OFD locks on bytes 100+i for
// each permission i the opener uses and 200+i for each it refuses to
// others; see [Perm] for what each use takes), checks them against other
// open file descriptions, and fails with a [*LockError] on a conflict.
// Nodes of one process on one file share one lock holder and never refuse
// each other. Create locks before it truncates and refuses a file that is
// open anywhere, this process included.
//
// # Concurrency
//
// Pread and BlockStatus may run in parallel with anything; mutating calls
// may run in parallel on non-overlapping ranges. Truncate must not run
// concurrently with requests beyond the new size.
//
// # Platforms
//
// Everything but Open, Create, Pread, Pwrite, Flush and Truncate needs Linux.
// Elsewhere Discard does nothing, WriteZeroes writes zeros, BlockStatus
// reports everything as data, block devices and Direct are
// block.ErrNotSupported.
package file
