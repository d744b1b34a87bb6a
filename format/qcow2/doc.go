// Package qcow2 is a read-write engine for QEMU's qcow2 image format
// (docs/interop/qcow2.rst in QEMU): versions 2 (compat=0.10) and 3
// (compat=1.1), cluster sizes 512 B to 2 MiB, refcount widths 1 to 64 bits,
// extended L2 entries (subclusters), zlib and zstd compressed clusters,
// backing files of any format, internal snapshots (read, and written with
// copy-on-write) and the dirty bit.
//
// # Opening
//
// [Open] opens an image over a protocol node ([block.Driver]). A writable
// image needs a growable node: Pwrite past Size must grow it (protocol/file
// with Growable, protocol/mem's NewGrowable). The package registers itself
// as the image format "qcow2" from init.
//
// # Metadata
//
// The L1 table lives in memory; L2 tables and refcount blocks are cached in
// LRU caches (options "l2-cache-size" and "refcount-cache-size", in bytes;
// by default every L2 table of the disk up to 32 MiB). Refcounts are always
// kept exact: lazy_refcounts images are written like others, and an image
// left dirty by another program has its refcounts rebuilt when it is opened
// writable.
//
// Metadata is written back on Flush, on cache eviction and on Close, in an
// order that keeps the image consistent at every flush point:
//
//  1. data clusters and refcount increases are written, then the file is
//     flushed;
//  2. L2 tables are written, then the L1 table, each followed by a flush;
//  3. only then are refcounts of freed clusters decreased and written.
//
// A crash may therefore leak clusters (refcount > 0, no reference) but never
// leave an L2 entry pointing at a cluster with refcount 0 or at unwritten
// data.
//
// # Allocation
//
// New clusters come from freed space first (the lowest free cluster), then
// from the end of the used area. A fresh cluster that a partial write must
// fill with zeros is zeroed natively where it lies inside the file and left a
// hole past its end, so a 4 KiB write into a 64 KiB cluster writes 4 KiB.
// A write of whole clusters that have no host cluster gets one contiguous
// run of new host clusters and goes out as one pwrite (a write over owned,
// host-contiguous clusters too); their L2 entries are set together after
// the data is written.
// Refcount blocks are created inside the range they describe; the refcount
// table grows by writing a larger copy and switching the header to it. Freed
// clusters become reusable at the next flush.
//
// # Concurrency
//
// Requests lock the guest clusters they touch in a range lock (shared for
// reads, exclusive for writes); the metadata lock is held only while tables
// are looked up or changed, never across data I/O. Reads and writes of
// different clusters therefore run in parallel, and two allocating writes to
// the same cluster cannot race. Guest data requests to the file node are
// bounded to "data-io-depth" (default 8) in flight: more only contend in
// the kernel.
//
// # Maintenance
//
// [Image.Check] verifies refcounts and copied flags against the references
// found in the image and repairs leaks or everything (rebuilding the
// refcount structures); [Image.Resize] grows and shrinks;
// [Image.SetBackingFile] rewrites the backing file name and format in the
// header (rebase); [Image.MakeEmpty] drops every cluster (commit); internal
// snapshots are read and preserved (writes to shared clusters copy them),
// but not created, applied or deleted.
//
// # Block status
//
// [Image.BlockStatus] decodes L2 entries in place in the cached tables and
// merges equal clusters across L2 tables: one call answers a whole run,
// with no allocation, in time proportional to the run.
//
// # Zero and discard
//
// On version 3 images WriteZeroes sets the zero flag: with MayUnmap the host
// cluster is freed, without it the cluster keeps its host storage and reads
// as zeros (anchored). Discard frees whole clusters and leaves a zero cluster
// where the image has a backing file (or the cluster was allocated), so
// backing data never shows through. Partial clusters are zeroed exactly by
// WriteZeroes and ignored by Discard. Version 2 images have no zero flag:
// without a backing file zeroed clusters are deallocated; with one, zeros
// are written and Discard does nothing.
package qcow2
