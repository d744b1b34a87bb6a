// Package image opens images by name: it picks the protocol (a file, a block
// device, later nbd:// URLs), probes or takes the format (-f always wins),
// opens the backing chain, and creates new images. Tools and servers call it;
// exports receive an opened block.Driver and never open files themselves.
//
// # Formats
//
// Format packages (format/raw, format/qcow2, ...) register a [Format] from
// their init functions.
//
// # Probing
//
// Probing recognises known magics and otherwise says raw. A probed-raw image
// never has a backing file (DESIGN.md rule 7).
package image
