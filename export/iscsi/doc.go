// Package iscsi is an iSCSI target (RFC 7143) that moves PDUs between
// initiators and the SCSI emulation of package scsi. It never opens images
// and never interprets a CDB: it receives opened logical units grouped in
// scsi.Targets, one per iSCSI target name.
//
// # Sessions
//
// A [Server] accepts TCP connections on a listener. Each connection is one
// session (MaxConnections=1) at error recovery level 0. Login negotiates
// HeaderDigest and DataDigest (None or CRC32C), MaxRecvDataSegmentLength,
// MaxBurstLength, FirstBurstLength, ImmediateData, InitialR2T,
// MaxOutstandingR2T and ErrorRecoveryLevel, with optional one-way or mutual
// CHAP (MD5). Discovery sessions answer SendTargets; normal sessions carry
// SCSI commands.
//
// # Data flow
//
// Writes take immediate data, unsolicited Data-Out and R2T-solicited
// Data-Out, one R2T outstanding at a time; reads return Data-In with the
// status collapsed into the last PDU when it is GOOD. Residuals follow the
// initiator's Expected Data Transfer Length. Commands of a session run
// concurrently, bounded by the CmdSN window the target advertises; their
// responses are batched into few socket writes.
//
// # Memory
//
// A session holds at most 64 commands (its CmdSN window), their immediate
// data (FirstBurstLength, at most 256 KiB each) and, for the writes being
// solicited, Data-Out buffers of at most 64 MiB in all: a write that would
// exceed that waits for its R2T until earlier writes complete.
//
// # Reservations
//
// Each session is one I_T nexus, named "InitiatorName,i,0xISID" and passed
// to the SCSI layer with every command; its RESERVE(6/10) is released when
// the session ends and on LOGICAL UNIT RESET.
//
// # Bad input
//
// Every length in a PDU is checked before anything is allocated: data
// segments larger than the negotiated MaxRecvDataSegmentLength, garbage
// opcodes, SCSI commands before login and Data-Out for unknown tasks end or
// are dropped by that session alone. Commands outside the CmdSN window are
// silently ignored, as RFC 7143 asks. Nothing an initiator sends can panic
// the server or stall other sessions.
package iscsi
