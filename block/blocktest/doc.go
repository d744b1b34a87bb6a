// Package blocktest is the conformance suite of the block.Driver contract:
// every protocol, format, filter and export client runs it.
//
// # What it does
//
// [Run] (or [Check], its core, usable outside tests) sends random sequences
// of Pwrite (random, all-zero and sparse payloads, some with FUA),
// WriteZeroes (with and without MayUnmap and NoFallback), Discard, Pread,
// BlockStatus walks, Flush, Info, out-of-range and zero-length requests to a
// node and checks every answer against a reference model of the content:
//
//   - reads return exactly what the model holds; after a Discard on a node
//     without Caps().DiscardZeroes each byte may read as its old value or
//     zero, and the first read decides;
//   - WriteZeroes leaves zeros; with NoFallback it may fail only with
//     ErrNotSupported, and must fail so when Caps().FastZero is false;
//   - a Discard on a node without Caps().Discard changes nothing;
//   - BlockStatus extents tile the asked range (no gaps, no overlaps,
//     0 < Len <= asked), an extent claiming Zero reads zeros, an
//     unallocated extent reads zeros without a backing node and the backing
//     node's bytes with one; block.ChainStatus tiles ranges too;
//   - out-of-range requests fail with ErrOutOfRange and change nothing;
//     a read-only node refuses every write with ErrReadOnly;
//   - Caps, Limits and Info are consistent (e.g. VirtualSize == Size, no
//     DiscardZeroes without Discard, UnallocatedReadsZero without backing);
//   - the node does not keep the caller's write buffer.
//
// Requests honour the node's Limits (alignment, MaxTransfer, MaxDiscard,
// MaxWriteZeroes). Options add a concurrent phase (workers on disjoint
// ranges) and a reopen that checks persistence.
//
// # Seeds
//
// A run is deterministic given its seed (the concurrent phase only up to
// the interleaving of its workers). The seed is logged; a failure prints it
// with the last operations, and THINBLK_SEED=N replays it.
//
// # Fake
//
// [Fake] is a small in-memory node with configurable Caps, Limits and
// backing, for tests of helpers and filters and of this suite itself.
package blocktest
