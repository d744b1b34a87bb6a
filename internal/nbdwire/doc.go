// Package nbdwire is the NBD wire codec shared by the server (export/nbd)
// and the client (protocol/nbd): the protocol constants, the handshake and
// option messages, request headers (compact and extended) and reply headers
// (simple, structured and extended), and the payloads of the chunks and
// option replies. It does no I/O policy: callers own the connection, the
// buffers and the state machine.
//
// # Spec
//
// The layouts follow NetworkBlockDevice/nbd doc/proto.md, including the
// EXTENDED_HEADERS extension (64-bit request lengths, 32-byte reply headers,
// NBD_REPLY_TYPE_BLOCK_STATUS_EXT), and the "qemu:" metadata namespace of
// qemu's docs/interop/nbd.rst. All integers are big-endian on the wire.
//
// # Untrusted input
//
// Every decoder checks lengths before it slices or allocates: a decoder
// given a malformed payload returns an error wrapping [ErrMalformed] and
// never panics. Payload lengths read from a header are returned to the
// caller, which must compare them with its own limits (see
// [MaxOptionLength]) before reading that many bytes.
package nbdwire
