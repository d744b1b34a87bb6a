package scsi

import (
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/thinblk/thinblk/block"
)

// Config describes one logical unit as the initiator sees it.
type Config struct {
	// BlockSize is the logical block size in bytes: 512 (the default when
	// 0) or 4096.
	BlockSize int
	// LBPRZ makes unmapped blocks read as zeros, as promised in READ
	// CAPACITY(16) and VPD page 0xB2. It is a property of the exported
	// disk; New refuses it when the node cannot deallocate and zero.
	LBPRZ bool
	// Anchor enables anchored blocks: ANC_SUP, UNMAP and WRITE SAME with
	// ANCHOR (zeroes that keep their storage).
	Anchor bool
	// Discard is what UNMAP does: with block.DiscardIgnore (the default)
	// it is accepted and does nothing; with block.DiscardUnmap it is passed
	// to the node.
	Discard block.DiscardMode
	// ReadOnly rejects every command that changes data with DATA PROTECT.
	ReadOnly bool
	// VendorID (8 characters), ProductID (16) and Revision (4) appear in
	// the standard INQUIRY data; longer strings are cut, shorter ones
	// padded with spaces. Empty means "THINBLK", "VIRTUAL-DISK", "0001".
	VendorID, ProductID, Revision string
	// Serial is the unit serial number (VPD 0x80), printable ASCII.
	Serial string
	// NAA is the 64-bit NAA designator of VPD 0x83. 0 derives a locally
	// assigned (NAA 3) name from Serial, stable for a given serial.
	NAA uint64
}

// Tunables advertised in the Block Limits VPD page.
const (
	// defaultMaxTransfer caps one READ/WRITE when the node has no limit
	// (65536 blocks of 512 bytes, which initiators such as libiscsi's test
	// suite expect to be able to send in one command).
	defaultMaxTransfer = 32 << 20
	// maxUnmapBlocks caps the LBAs of one UNMAP or WRITE SAME, so that a
	// single command never writes more than this many blocks of zeros when
	// the node cannot deallocate.
	maxUnmapBlocks = 1 << 20
	// maxUnmapDescriptors is the finite MAXIMUM UNMAP BLOCK DESCRIPTOR
	// COUNT.
	maxUnmapDescriptors = 256
	// maxCompareAndWrite is the MAXIMUM COMPARE AND WRITE LENGTH in blocks.
	maxCompareAndWrite = 16
	// maxGetLBAStatusDescriptors bounds the work of one GET LBA STATUS.
	maxGetLBAStatusDescriptors = 1024
)

// LU is a logical unit: SBC block commands over one block.Driver. It is
// safe for concurrent use. The LU does not own the node: Close the node
// after the last Execute returned.
type LU struct {
	node   block.Driver
	cfg    Config
	caps   block.Caps
	limits block.Limits

	blockSize  uint64
	blockShift uint
	blocks     uint64 // capacity in logical blocks
	writable   bool
	unmap      bool // UNMAP reaches the node (discard=unmap)
	thin       bool // the node can hold unallocated blocks
	physExp    uint // logical blocks per physical block exponent
	maxXfer    uint64
	optXfer    uint64
	unmapGran  uint64
	unmapAlign uint64 // valid when unmapGran > 1
	naa        uint64
	vendor     string
	product    string
	revision   string

	locks block.RangeLocks
	res   reservations
}

// New makes a logical unit over node. It fails when the configuration
// cannot be honoured by the node: a block size other than 512 or 4096, a
// node smaller than one block or whose request alignment the block size does
// not satisfy, or LBPRZ=1 on a node that cannot deallocate and guarantee
// zeros (Caps().ZeroUnmap). With LBPRZ=1 the LU unmaps with
// WriteZeroes(MayUnmap), never with Discard, so a node whose Discard may
// leave partial granules untouched (qcow2) still qualifies.
func New(node block.Driver, cfg Config) (*LU, error) {
	if cfg.BlockSize == 0 {
		cfg.BlockSize = 512
	}
	if cfg.BlockSize != 512 && cfg.BlockSize != 4096 {
		return nil, fmt.Errorf("scsi: block size %d: %w (512 or 4096)", cfg.BlockSize, block.ErrInvalid)
	}
	lu := &LU{node: node, cfg: cfg, caps: node.Caps(), limits: node.Limits()}
	lu.blockSize = uint64(cfg.BlockSize)
	for 1<<lu.blockShift < lu.blockSize {
		lu.blockShift++
	}
	size := node.Size()
	if size < int64(lu.blockSize) {
		return nil, fmt.Errorf("scsi: node of %d bytes is smaller than one %d-byte block: %w", size, lu.blockSize, block.ErrInvalid)
	}
	lu.blocks = uint64(size) >> lu.blockShift
	if a := lu.limits.RequestAlign; a > 1 && (int64(lu.blockSize)%a != 0) {
		return nil, fmt.Errorf("scsi: block size %d is not a multiple of the node's request alignment %d: %w", lu.blockSize, a, block.ErrInvalid)
	}
	lu.writable = lu.caps.Write && !cfg.ReadOnly
	lu.unmap = cfg.Discard == block.DiscardUnmap && lu.writable
	lu.thin = lu.caps.BlockStatus && (lu.caps.Discard || lu.caps.ZeroUnmap)
	if cfg.LBPRZ && !lu.caps.ZeroUnmap {
		return nil, fmt.Errorf("scsi: lbprz=1 needs a node that deallocates and reads zeros afterwards (%s does not): %w", nodeName(node), block.ErrNotSupported)
	}
	if pb := lu.limits.PhysicalBlock; pb > int64(lu.blockSize) {
		for (lu.blockSize<<(lu.physExp+1)) <= uint64(pb) && lu.physExp < 15 {
			lu.physExp++
		}
	}
	lu.maxXfer = defaultMaxTransfer >> lu.blockShift
	if mt := lu.limits.MaxTransfer; mt > 0 && uint64(mt)>>lu.blockShift < lu.maxXfer {
		lu.maxXfer = max(1, uint64(mt)>>lu.blockShift)
	}
	if ot := lu.limits.OptimalTransfer; ot > 0 {
		lu.optXfer = min(lu.maxXfer, max(1, uint64(ot)>>lu.blockShift))
	}
	lu.unmapGran = 1
	if g := lu.limits.DiscardGranularity; g > int64(lu.blockSize) {
		lu.unmapGran = uint64(g) >> lu.blockShift
		lu.unmapAlign = (uint64(lu.limits.DiscardAlignment) >> lu.blockShift) % lu.unmapGran
	}
	lu.naa = cfg.NAA
	if lu.naa == 0 {
		h := fnv.New64a()
		h.Write([]byte(cfg.Serial))
		lu.naa = 3<<60 | h.Sum64()>>4
	}
	lu.vendor = pad(cfg.VendorID, "THINBLK", 8)
	lu.product = pad(cfg.ProductID, "VIRTUAL-DISK", 16)
	lu.revision = pad(cfg.Revision, "0001", 4)
	return lu, nil
}

func nodeName(d block.Driver) string {
	if info, err := d.Info(); err == nil && info.Format != "" {
		return "a " + info.Format + " node"
	}
	return "the node"
}

// pad returns s (or def when s is empty) cut or space-padded to n bytes,
// with bytes outside printable ASCII replaced by '_'.
func pad(s, def string, n int) string {
	if s == "" {
		s = def
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7E {
			b[i] = '_'
		}
	}
	if len(b) > n {
		b = b[:n]
	}
	return string(b) + strings.Repeat(" ", n-len(b))
}

// BlockSize returns the logical block size in bytes.
func (lu *LU) BlockSize() int { return int(lu.blockSize) }

// Blocks returns the capacity in logical blocks.
func (lu *LU) Blocks() uint64 { return lu.blocks }

// Node returns the node the LU serves.
func (lu *LU) Node() block.Driver { return lu.node }

// inRange reports whether [lba, lba+n) lies within the capacity, without
// overflowing. A zero-length range may start at the capacity itself.
func (lu *LU) inRange(lba, n uint64) bool {
	return lba <= lu.blocks && n <= lu.blocks-lba
}

// byteRange converts a checked block range to a byte offset and length.
func (lu *LU) byteRange(lba, n uint64) (off, length int64) {
	return int64(lba << lu.blockShift), int64(n << lu.blockShift)
}

// DataOutLen returns how many Data-Out bytes the CDB transfers to the
// device server (its SPDTL): blocks for writes, a parameter list for UNMAP
// and MODE SELECT, 0 for commands without Data-Out, for unknown commands
// and for CDBs too short to read. A transport solicits exactly this many
// bytes; when the initiator's expected length differs it may reject the
// command with [SenseInvalidFieldInIU] without reading the data.
func (lu *LU) DataOutLen(cdb []byte) int64 {
	if len(cdb) == 0 || len(cdb) < CDBLen(cdb[0]) {
		return 0
	}
	bs := int64(lu.blockSize)
	switch cdb[0] {
	case opWrite6, opWrite10, opWrite12, opWrite16, opWriteVerify10,
		opWriteVerify12, opWriteVerify16, opOrWrite:
		r, _ := decodeLBA(cdb)
		return int64(min(r.blocks, 1<<32)) * bs
	case opCompareAndWrite:
		return 2 * int64(cdb[13]) * bs
	case opVerify10, opVerify12, opVerify16:
		r, _ := decodeLBA(cdb)
		switch (r.flags >> 1) & 3 {
		case 1:
			return int64(min(r.blocks, 1<<32)) * bs
		case 3:
			return bs
		}
		return 0
	case opWriteSame10, opWriteSame16:
		if cdb[0] == opWriteSame16 && cdb[1]&0x01 != 0 { // NDOB
			return 0
		}
		return bs
	case opUnmap:
		return int64(getU16(cdb[7:]))
	case opModeSelect6:
		return int64(cdb[4])
	case opModeSelect10:
		return int64(getU16(cdb[7:]))
	case opPersistentOut:
		return int64(getU32(cdb[5:]))
	}
	return 0
}

// TakesDataOut reports whether the command transfers Data-Out to the
// device server at all (whatever its length). A transport that gets data
// for a command that takes none runs it without the data.
func TakesDataOut(cdb []byte) bool {
	if len(cdb) == 0 {
		return false
	}
	switch cdb[0] {
	case opWrite6, opWrite10, opWrite12, opWrite16, opWriteVerify10,
		opWriteVerify12, opWriteVerify16, opOrWrite, opCompareAndWrite,
		opVerify10, opVerify12, opVerify16, opWriteSame10, opWriteSame16,
		opUnmap, opModeSelect6, opModeSelect10, opPersistentOut:
		return true
	}
	return false
}

// Truncatable reports whether a command may run with less Data-Out than
// its CDB asks for, when the initiator expected to send less: WRITE and
// WRITE AND VERIFY write the whole blocks that arrived (SAM-5 5.4.3,
// FCP-4's overflow rule), and a transport collects at most the initiator's
// expected length for them. Other commands with a length mismatch are
// refused with DataOutMismatch.
func Truncatable(cdb []byte) bool {
	if len(cdb) == 0 {
		return false
	}
	switch cdb[0] {
	case opWrite6, opWrite10, opWrite12, opWrite16,
		opWriteVerify10, opWriteVerify12, opWriteVerify16:
		return true
	}
	return false
}

// DataOutMismatch returns the sense for a command that takes Data-Out when
// the initiator's expected length differs from DataOutLen: INVALID FIELD IN
// CDB for COMPARE AND WRITE (its NUMBER OF LOGICAL BLOCKS disagrees with
// the data; a length field of 256 blocks wraps to 0, as LIO reports it),
// INVALID FIELD IN INFORMATION UNIT (FCP-4, SAM-5) otherwise. The command is
// not executed.
func DataOutMismatch(cdb []byte) Sense {
	if len(cdb) > 0 && cdb[0] == opCompareAndWrite {
		return SenseInvalidFieldInCDB
	}
	return SenseInvalidFieldInIU
}

// Execute runs one command and fills c.DataIn, c.Status and c.Sense.
// c.DataOut must hold the Data-Out the initiator sent: DataOutLen bytes,
// or fewer for a Truncatable command whose initiator expected to send less.
// DataIn may be longer than the initiator's allocation: the transport
// truncates it and reports the residual. Call c.Release when DataIn has
// been sent.
func (lu *LU) Execute(c *Command) {
	c.reset()
	cdb := c.CDB
	if len(cdb) == 0 {
		c.fail(SenseInvalidOpcode)
		return
	}
	n := CDBLen(cdb[0])
	if n == 0 {
		c.fail(SenseInvalidOpcode)
		return
	}
	if len(cdb) < n {
		c.fail(SenseInvalidFieldInCDB)
		return
	}
	if lu.res.conflict(c.Initiator, cdb) {
		c.conflict()
		return
	}
	switch cdb[0] {
	case opTestUnitReady:
	case opReserve6, opRelease6, opReserve10, opRelease10:
		lu.reserve(c)
	case opPersistentIn:
		lu.persistentIn(c)
	case opPersistentOut:
		lu.persistentOut(c)
	case opRequestSense:
		lu.requestSense(c)
	case opInquiry:
		lu.inquiry(c)
	case opReadCapacity10:
		lu.readCapacity10(c)
	case opServiceActionIn16:
		switch cdb[1] & 0x1F {
		case saReadCapacity16:
			lu.readCapacity16(c)
		case saGetLBAStatus:
			lu.getLBAStatus(c)
		default:
			c.fail(SenseInvalidFieldInCDB)
		}
	case opRead6, opRead10, opRead12, opRead16:
		lu.read(c)
	case opWrite6, opWrite10, opWrite12, opWrite16,
		opWriteVerify10, opWriteVerify12, opWriteVerify16:
		lu.write(c)
	case opVerify10, opVerify12, opVerify16:
		lu.verify(c)
	case opCompareAndWrite:
		lu.compareAndWrite(c)
	case opOrWrite:
		lu.orWrite(c)
	case opPrefetch10, opPrefetch16:
		lu.prefetch(c)
	case opSyncCache10, opSyncCache16:
		lu.syncCache(c)
	case opUnmap:
		lu.unmapCmd(c)
	case opWriteSame10, opWriteSame16:
		lu.writeSame(c)
	case opModeSense6, opModeSense10:
		lu.modeSense(c)
	case opModeSelect6, opModeSelect10:
		lu.modeSelect(c)
	case opMaintenanceIn:
		if cdb[1]&0x1F != saReportOpcodes {
			c.fail(SenseInvalidFieldInCDB)
			return
		}
		lu.reportOpcodes(c)
	case opStartStopUnit, opPreventAllow:
		// A virtual disk has no medium to spin or eject: accepted.
	case opReportLUNs:
		// Without a Target, the LU reports itself as LUN 0.
		reportLUNs(c, []uint64{0})
	default:
		c.fail(SenseInvalidOpcode)
	}
}
