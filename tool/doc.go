// Package tool holds the logic of thinblk's verbs, one file per verb, so
// that each can be tested without building the binary. cmd/thinblk only
// wires flags to these functions.
//
// # Conventions
//
// A verb is a function taking an output writer, the image name(s) and an
// options struct. It writes its normal output (qemu-img's and qemu-io's
// shapes) to the writer and returns an error for the caller to print as one
// line. An *ExitError picks an exit code other than 1; one with a nil Err
// means the verb has already reported its failures.
//
// # Numbers
//
// Sizes and offsets are parsed by ParseSize (qemu's rules: a plain number is
// bytes, k/M/G/T/P/E suffixes are binary). Human output uses qemu's
// formatting of sizes (FormatSize, and qemu-io's FormatIOSize).
package tool
