// Package block is the contract every thinblk node implements, and the shared
// helpers that keep fallback, validation and merging in one place.
//
// # Nodes
//
// A node is anything that stores a virtual disk: a protocol (a file, a block
// device, memory, an NBD server), a format over a protocol (raw, qcow2, ...),
// or a filter over another node. All of them implement [Driver]. Offsets and
// lengths are int64 bytes everywhere; sectors, LBAs and clusters exist only at
// the edges. Callers own buffers. A request succeeds in full or returns an
// error.
//
// # Status
//
// [Driver.BlockStatus] describes a run of bytes in this node only, with the
// [Status] bits Data, Zero and Allocated. A run with neither Data nor Zero is
// unallocated here: the caller asks the backing node ([Backed]), and without
// one it reads as zeros. [ChainStatus] merges status down a backing chain and
// reports the depth at which a run was found.
//
// # Zeroes and discard
//
// Discard is a hint and may do nothing; WriteZeroes always leaves zeros.
// [WriteZeroesFallback] is the one place that turns a zeroing request into
// written zero bytes when a node cannot zero natively.
//
// # Concurrency
//
// Pread and BlockStatus may run in parallel with anything; mutating calls may
// run in parallel on non-overlapping ranges. A node that cannot do that is
// wrapped in a serializing filter.
package block
