// Package copy is thinblk's copy engine: it copies the content of one or
// more source nodes, laid end to end, into a target node, and serves
// `convert`, `dd`, `commit` and `rebase` (and later mirror and stream jobs).
//
// # What it reads and writes
//
// The engine walks each source's status merged down its backing chain
// (as [block.ChainStatus], through a [StatusCursor] so that each layer is
// asked about each of its runs once), optionally stopping at a base node.
// It reads data ranges in requests of about [DefaultRequestSize] bytes,
// aligned to the target's cluster size. On a target with clusters (qcow2)
// every cluster belongs to one request whole, as in qemu-img convert: a
// data extent grows to whole clusters, so the parts of its first and last
// cluster that the status calls zeros or holes are read too (and
// zero-detected); ranges that read as zeros outside those clusters are
// never read. Formats whose clusters stay sparse in their file after a
// partial write (VHDX, VHD: they say so with SparseClusters) are treated
// as having no clusters, so that their blocks are not filled with zeros. Each data buffer is scanned for zeros at the sparse
// granularity (Options.SparseSize, default 4 KiB, rounded up to the target's
// cluster size): zero runs are skipped when the target already reads zeros
// (Options.TargetIsZero) and become [block.ZeroRange] with MayUnmap
// otherwise; the rest is written with Pwrite. With [FullyAllocate] nothing is
// skipped: zeros are written as zero bytes, so the target ends up fully
// allocated (qemu-img convert -S 0).
//
// Ranges unallocated above Source.Base are left alone: the target's backing
// file provides them. With Options.Backing (the target's backing node) the
// engine also compares what it would write with what the backing already
// reads there and writes only the granules that differ.
//
// # Compression
//
// With Options.Compress the target must implement [Compressor] (or qcow2's
// WriteCompressed, which is the same contract): non-zero clusters go
// through PwriteCompressed.
//
// # Concurrency and order
//
// Options.Parallel workers (default 4) each own one reusable buffer. Reads
// always run in parallel. Writes run one at a time in the order of target
// offsets unless Options.OutOfOrder is set (qemu-img convert -W): a format
// allocating at the end of its file then lays clusters out in guest order,
// and even on raw targets one writer beats several, which contend for the
// file's lock (measured on ext4: parallelism pays only by overlapping reads
// with the write).
//
// # Failure
//
// The first error stops the copy: no new request starts, requests in flight
// finish, and Run returns that error as a *block.OpError naming the node and
// the guest offset of the failed request. The target is then partly written.
package copy
