// Package nbd is an NBD server (fixed newstyle) exporting opened
// block.Driver nodes. It never opens files: callers (the `thinblk nbd` and
// `thinblk serve` verbs) open images with package image and hand the nodes
// over in [Export] values.
//
// # Protocol
//
// Options: EXPORT_NAME, GO, INFO (NBD_INFO_EXPORT, NAME, DESCRIPTION,
// BLOCK_SIZE), LIST, ABORT, STARTTLS, STRUCTURED_REPLY, EXTENDED_HEADERS,
// LIST_META_CONTEXT and SET_META_CONTEXT with the contexts base:allocation
// and (when enabled) qemu:allocation-depth. Commands: READ (structured
// replies send holes as OFFSET_HOLE chunks), WRITE, FLUSH, TRIM,
// WRITE_ZEROES (NO_HOLE, FAST_ZERO), BLOCK_STATUS (REQ_ONE), CACHE, DISC,
// with the FUA and DF flags.
//
// # Advertised features
//
// Every transmission flag is derived from the node's Caps and the export's
// discard mode (see [Export.TransmissionFlags]); nothing is advertised that
// the node would have to fake, except WRITE_ZEROES, which the block layer
// emulates by writing zeros (and fails fast under FAST_ZERO).
//
// # Status mapping
//
// base:allocation follows qemu-nbd: NBD_STATE_HOLE when the merged chain
// status has no Data bit (a file hole, an unallocated or zero cluster), and
// NBD_STATE_ZERO when the range reads as zeros (Zero, or unallocated in the
// whole chain). qemu:allocation-depth is 0 for unallocated in the whole
// chain, 1 for the top node, 2 for its backing node, and so on.
//
// # Concurrency
//
// Each connection has a few workers (Server.Workers) that take turns
// reading one request each and then run it themselves, so up to Workers
// requests run at once and replies go out of order. Replies share one
// buffered writer, flushed when no other request is still running (slow
// ones - FLUSH, TRIM, WRITE_ZEROES, FUA or large writes - do not count)
// and no further request has already arrived, so bursts of replies leave
// in one write; before a worker waits for the client, it flushes.
// Mutating requests on overlapping ranges of one export are serialized
// (the Driver contract allows parallel mutation of disjoint ranges only).
// Payload buffers come from a pool, and each connection holds at most
// MaxConnBuffer bytes of them, so memory per connection is bounded.
//
// # Errors
//
// One table ([Errno]) maps block errors to NBD error values. Malformed
// input gets the error the spec names (EINVAL for bad flags, unknown
// commands, unaligned or out-of-range reads and trims; ENOSPC for writes
// past the end; EPERM for writes to a read-only export; ENOTSUP for a
// FAST_ZERO that would be slow) or, for a bad magic or an oversized
// payload, a hard disconnect of that connection only.
package nbd
