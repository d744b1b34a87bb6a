// Package scsi emulates a SCSI block device (SBC-4 over SPC-5) on top of a
// block.Driver, with no transport in sight: a CDB and its Data-Out buffer go
// in, Data-In bytes, a status byte and sense data come out. export/iscsi
// moves the bytes; this package decides what they mean.
//
// # Logical units and targets
//
// An [LU] is one logical unit over one node, configured by [Config]: the
// logical block size (512 or 4096), the guest-visible LBPRZ, anchoring
// support, the discard policy and the identity strings. A [Target] groups
// LUs by number and answers what no single LU can (REPORT LUNS, commands to
// an absent LUN).
//
// # Commands
//
// [LU.Execute] runs one [Command]. Before the transport collects Data-Out it
// asks [LU.DataOutLen] how many bytes the CDB will consume, so that an
// initiator's Expected Data Transfer Length can be checked and rejected
// without reading the data. All range checks are done in logical blocks with
// overflow-safe arithmetic before any byte offset is formed.
//
// # Thin provisioning
//
// The rules of DESIGN.md apply: UNMAP becomes Discard (nothing at all under
// block.DiscardIgnore), WRITE SAME with UNMAP and a zero payload becomes
// WriteZeroes with MayUnmap, ANCHOR becomes WriteZeroes that keeps storage,
// and GET LBA STATUS reports mapped, deallocated and anchored runs from
// block.ChainStatus over the whole backing chain. The LBPRZ a guest sees is
// part of the configuration; [New] refuses LBPRZ=1 when the node cannot
// deallocate and guarantee zeros.
//
// # Reservations
//
// RESERVE/RELEASE (SPC-2) and persistent reservations (PERSISTENT RESERVE
// IN/OUT: register, reserve, release, clear, preempt, all six types, LU
// scope) are kept per LU and per I_T nexus, named by [Command.Initiator].
// Transports call [LU.NexusLost] when a session ends and [LU.Reset] on a
// LOGICAL UNIT RESET; persistent state lasts as long as the LU (APTPL is not
// supported).
//
// # Concurrency
//
// Execute may be called from many goroutines at once. Commands that change
// data lock their block range, so overlapping writes are serialized and
// COMPARE AND WRITE and ORWRITE are atomic with respect to other writers;
// reads take no lock.
package scsi
