// Package image opens images by name: it picks the protocol (a file, a block
// device, or a URL of a registered protocol such as nbd://), probes or takes
// the format (-f always wins), opens the backing chain, and creates new
// images. Tools and servers call it; exports receive an opened block.Driver
// and never open files themselves.
//
// # Formats
//
// Format packages (format/raw, format/qcow2, ...) register a [Format] from
// their init functions; programs import them for that effect. A format node
// may implement the optional interfaces [BackingFiler], [ClusterSizer] and
// [DirtyFlagger]; tools find them through wrappers with block.As.
//
// # Protocols
//
// A name containing "scheme://" is opened by the opener registered with
// [RegisterProtocol] for that scheme; any other name is a path opened with
// protocol/file (regular files and block devices; folders are refused).
//
// # Probing
//
// [Open] reads the first [ProbeSize] bytes and asks every format's Probe; the
// highest score wins, and raw is the fallback. A probed-raw image never has
// a backing file, and writes that would make its first bytes probe as
// another format are refused (DESIGN.md rule 7); an explicit format removes
// that guard.
//
// # Backing chains
//
// A format opens its backing file through FormatOpen.OpenBacking, which
// resolves a relative name against the folder of the image that records it
// ([ResolveBacking]), opens it read-only, and refuses loops and chains deeper
// than [MaxChainDepth].
//
// # Cache, discard and detect-zeroes
//
// Options.Cache takes qemu's cache modes (writeback, none, writethrough,
// directsync, unsafe); Options.Discard and Options.DetectZeroes apply
// block.WithPolicy to the top node and tell the storage node whether
// discards may deallocate.
package image
