// Package nbd is an NBD client as a protocol node: a block.Driver over an
// export of any NBD server (thinblk, qemu-nbd, nbdkit, nbd-server).
//
// # Names
//
// [Dial] takes the URLs qemu and libnbd use:
//
//	nbd://host[:port]/export           TCP (port 10809 by default)
//	nbd+unix:///export?socket=PATH     a Unix socket
//	nbds://..., nbds+unix://...        the same over TLS; the query
//	                                   parameter tls-certificates=DIR names
//	                                   a folder with ca-cert.pem (and
//	                                   optionally client-cert.pem and
//	                                   client-key.pem), as in libnbd
//
// The package registers the schemes with image.RegisterProtocol, so these
// names open anywhere a file name is accepted.
//
// # Protocol
//
// The client negotiates fixed newstyle, extended headers (falling back to
// structured replies, then to simple replies), the base:allocation context
// and NBD_OPT_GO with NBD_INFO_BLOCK_SIZE (falling back to
// NBD_OPT_EXPORT_NAME). Requests are pipelined: any number of goroutines
// may call the node at once; one reader goroutine matches replies to
// requests by cookie, so replies may come in any order.
//
// # Status
//
// base:allocation maps to block.Status as: HOLE clear -> Allocated; ZERO
// set -> Zero; otherwise Data. A range with neither HOLE nor ZERO is
// Data|Allocated, HOLE|ZERO is Zero (deallocated), ZERO alone is
// Data|Zero|Allocated (as qemu reports it: data, reading as zeros), and
// HOLE alone is Data (its contents are unknown, so they must be read). The
// server's extents are cached until the next write through this node.
package nbd
