package scsi

import "encoding/binary"

// Operation codes this package knows (SPC-5, SBC-4).
const (
	opTestUnitReady     = 0x00
	opRequestSense      = 0x03
	opRead6             = 0x08
	opWrite6            = 0x0A
	opInquiry           = 0x12
	opModeSelect6       = 0x15
	opModeSense6        = 0x1A
	opStartStopUnit     = 0x1B
	opPreventAllow      = 0x1E
	opReadCapacity10    = 0x25
	opRead10            = 0x28
	opWrite10           = 0x2A
	opWriteVerify10     = 0x2E
	opVerify10          = 0x2F
	opPrefetch10        = 0x34
	opSyncCache10       = 0x35
	opWriteSame10       = 0x41
	opUnmap             = 0x42
	opModeSelect10      = 0x55
	opModeSense10       = 0x5A
	opRead16            = 0x88
	opCompareAndWrite   = 0x89
	opWrite16           = 0x8A
	opOrWrite           = 0x8B
	opWriteVerify16     = 0x8E
	opVerify16          = 0x8F
	opPrefetch16        = 0x90
	opSyncCache16       = 0x91
	opWriteSame16       = 0x93
	opServiceActionIn16 = 0x9E
	opReportLUNs        = 0xA0
	opMaintenanceIn     = 0xA3
	opRead12            = 0xA8
	opWrite12           = 0xAA
	opWriteVerify12     = 0xAE
	opVerify12          = 0xAF
)

// Service actions.
const (
	saReadCapacity16 = 0x10
	saGetLBAStatus   = 0x12
	saReportOpcodes  = 0x0C
)

// CDBLen returns the length of a CDB from its operation code's group, or 0
// for groups with no fixed length (reserved and vendor specific).
func CDBLen(opcode byte) int {
	switch opcode >> 5 {
	case 0:
		return 6
	case 1, 2:
		return 10
	case 4:
		return 16
	case 5:
		return 12
	}
	return 0
}

func getU16(p []byte) uint64    { return uint64(binary.BigEndian.Uint16(p)) }
func getU32(p []byte) uint64    { return uint64(binary.BigEndian.Uint32(p)) }
func getU64(p []byte) uint64    { return binary.BigEndian.Uint64(p) }
func putU16(p []byte, v uint16) { binary.BigEndian.PutUint16(p, v) }
func putU32(p []byte, v uint32) { binary.BigEndian.PutUint32(p, v) }
func putU64(p []byte, v uint64) { binary.BigEndian.PutUint64(p, v) }

// lbaRange is the LBA, the block count and the flags byte (byte 1) of a
// command that addresses logical blocks.
type lbaRange struct {
	lba    uint64
	blocks uint64
	flags  byte
}

// decodeLBA reads the LBA and transfer length of the block commands by
// their CDB layout. ok is false for opcodes that address no blocks. The CDB
// must be at least CDBLen(cdb[0]) bytes long.
func decodeLBA(cdb []byte) (r lbaRange, ok bool) {
	switch cdb[0] {
	case opRead6, opWrite6:
		r.lba = uint64(cdb[1]&0x1F)<<16 | getU16(cdb[2:])
		r.blocks = uint64(cdb[4])
		if r.blocks == 0 {
			r.blocks = 256 // SBC: a transfer length of 0 means 256 blocks
		}
	case opRead10, opWrite10, opWriteVerify10, opVerify10, opPrefetch10,
		opSyncCache10, opWriteSame10:
		r.lba, r.blocks, r.flags = getU32(cdb[2:]), getU16(cdb[7:]), cdb[1]
	case opRead12, opWrite12, opWriteVerify12, opVerify12:
		r.lba, r.blocks, r.flags = getU32(cdb[2:]), getU32(cdb[6:]), cdb[1]
	case opRead16, opWrite16, opWriteVerify16, opVerify16, opPrefetch16,
		opSyncCache16, opWriteSame16, opOrWrite:
		r.lba, r.blocks, r.flags = getU64(cdb[2:]), getU32(cdb[10:]), cdb[1]
	case opCompareAndWrite:
		r.lba, r.blocks, r.flags = getU64(cdb[2:]), uint64(cdb[13]), cdb[1]
	default:
		return r, false
	}
	return r, true
}
