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
// # Bad input
//
// Every length in a PDU is checked before anything is allocated: data
// segments larger than the negotiated MaxRecvDataSegmentLength, garbage
// opcodes, SCSI commands before login and Data-Out for unknown tasks end or
// are dropped by that session alone. Commands outside the CmdSN window are
// silently ignored, as RFC 7143 asks. Nothing an initiator sends can panic
// the server or stall other sessions.
package iscsi
