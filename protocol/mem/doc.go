// Package mem is a sparse in-memory block node, for tests and scratch disks.
//
// # Storage
//
// The disk is kept as a map of [ChunkSize] chunks. A chunk is in one of
// three states, which BlockStatus reports as they are:
//
//   - absent: never written, or discarded — reads zeros, status Zero
//     (deallocated);
//   - anchored: zeroed by WriteZeroes without MayUnmap — reads zeros,
//     storage counted as reserved, status Zero|Allocated;
//   - data: holds bytes — status Data|Allocated.
//
// Discard and WriteZeroes(MayUnmap) free every chunk they cover whole and
// zero the bytes they cover in a chunk they cover in part, so a discarded
// range always reads as zeros (Caps().DiscardZeroes).
//
// # Growth
//
// A node made by [NewGrowable] accepts Pwrite past its size and grows to
// cover the write, as a format that appends clusters (qcow2) needs.
// [Node.Truncate] changes the size explicitly on any node.
//
// # Concurrency
//
// A Node is safe for concurrent use. Reads and BlockStatus run in parallel
// with each other; mutating calls are serialized by one lock.
package mem
