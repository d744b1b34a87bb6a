// Package raw is the raw image format: the virtual disk is the bytes of its
// file, or of a window [offset, offset+size) of it.
//
// # Requests
//
// Every request is checked against the window and passed to the file node
// at offset+off: Pread, Pwrite (with FUA), Discard, WriteZeroes (with its
// flags), Flush. BlockStatus returns the file node's status with the offsets
// moved back into the window and HostOffset set to the file offset, so
// `map` shows where each run lives in the file, as qemu-img does. Caps and
// Limits are the file node's.
//
// # Format registry
//
// The package registers format "raw" with package image. Open takes the
// driver options "offset" and "size" (bytes, k/M/G/T suffixes allowed);
// Create takes the creation option "preallocation" (off, falloc, full). Any
// other key is refused with an error naming it. Raw never probes (it is what
// an image is when nothing else matches) and never has a backing file.
//
// # Size
//
// The size is fixed at Open, even over a growable file node: a raw image
// does not grow by writing past its end. [Node.Truncate] resizes an image
// that spans its whole file.
package raw
