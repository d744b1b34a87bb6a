package scsi

// supportedOp is one row of REPORT SUPPORTED OPERATION CODES.
type supportedOp struct {
	opcode byte
	sa     uint16
	hasSA  bool
}

// supportedOps lists every command Execute implements.
var supportedOps = []supportedOp{
	{opcode: opTestUnitReady}, {opcode: opRequestSense}, {opcode: opRead6},
	{opcode: opWrite6}, {opcode: opInquiry}, {opcode: opModeSelect6},
	{opcode: opModeSense6}, {opcode: opStartStopUnit}, {opcode: opPreventAllow},
	{opcode: opReadCapacity10}, {opcode: opRead10}, {opcode: opWrite10},
	{opcode: opWriteVerify10}, {opcode: opVerify10}, {opcode: opPrefetch10},
	{opcode: opSyncCache10}, {opcode: opWriteSame10}, {opcode: opUnmap},
	{opcode: opModeSelect10}, {opcode: opModeSense10}, {opcode: opRead16},
	{opcode: opCompareAndWrite}, {opcode: opWrite16}, {opcode: opOrWrite},
	{opcode: opWriteVerify16}, {opcode: opVerify16}, {opcode: opPrefetch16},
	{opcode: opSyncCache16}, {opcode: opWriteSame16},
	{opcode: opServiceActionIn16, sa: saReadCapacity16, hasSA: true},
	{opcode: opServiceActionIn16, sa: saGetLBAStatus, hasSA: true},
	{opcode: opReportLUNs},
	{opcode: opMaintenanceIn, sa: saReportOpcodes, hasSA: true},
	{opcode: opRead12}, {opcode: opWrite12}, {opcode: opWriteVerify12},
	{opcode: opVerify12}, {opcode: opReserve6}, {opcode: opRelease6},
	{opcode: opReserve10}, {opcode: opRelease10},
	{opcode: opPersistentIn, sa: 0, hasSA: true}, {opcode: opPersistentIn, sa: 1, hasSA: true},
	{opcode: opPersistentIn, sa: 2, hasSA: true}, {opcode: opPersistentIn, sa: 3, hasSA: true},
	{opcode: opPersistentOut, sa: 0, hasSA: true}, {opcode: opPersistentOut, sa: 1, hasSA: true},
	{opcode: opPersistentOut, sa: 2, hasSA: true}, {opcode: opPersistentOut, sa: 3, hasSA: true},
	{opcode: opPersistentOut, sa: 4, hasSA: true}, {opcode: opPersistentOut, sa: 5, hasSA: true},
	{opcode: opPersistentOut, sa: 6, hasSA: true},
}

// usageData returns the CDB USAGE DATA of a command: the opcode, then a
// bit set for every CDB bit the device server looks at (conservatively all
// of them), the service action bits for commands that have one, and the
// NACA/LINK bits of the control byte cleared.
func (op supportedOp) usageData() []byte {
	n := CDBLen(op.opcode)
	u := make([]byte, n)
	u[0] = op.opcode
	for i := 1; i < n-1; i++ {
		u[i] = 0xFF
	}
	if op.hasSA {
		u[1] = 0x1F
	}
	return u
}

// timeoutsDescriptor is the 12-byte command timeouts descriptor (no
// recommended timeouts).
func timeoutsDescriptor(p []byte) {
	putU16(p, 0x0A)
}

// reportOpcodes serves REPORT SUPPORTED OPERATION CODES (SPC-5 6.35):
// reporting options 000b (all), 001b (by opcode), 010b (by opcode and
// service action) and 011b (either), with or without timeouts (RCTD).
func (lu *LU) reportOpcodes(c *Command) {
	cdb := c.CDB
	rctd := cdb[2]&0x80 != 0
	options := cdb[2] & 0x07
	reqOp, reqSA := cdb[3], uint16(getU16(cdb[4:]))
	alloc := int(getU32(cdb[6:]))
	switch options {
	case 0:
		descLen := 8
		if rctd {
			descLen += 12
		}
		p := c.alloc(4 + descLen*len(supportedOps))
		putU32(p, uint32(len(p)-4))
		for i, op := range supportedOps {
			d := p[4+descLen*i:]
			d[0] = op.opcode
			putU16(d[2:], op.sa)
			if op.hasSA {
				d[5] |= 0x01 // SERVACTV
			}
			if rctd {
				d[5] |= 0x02 // CTDP
				timeoutsDescriptor(d[8:])
			}
			putU16(d[6:], uint16(CDBLen(op.opcode)))
		}
	case 1, 2, 3:
		var found *supportedOp
		opcodeHasSA := false
		for i, op := range supportedOps {
			if op.opcode != reqOp {
				continue
			}
			opcodeHasSA = opcodeHasSA || op.hasSA
			if !op.hasSA || op.sa == reqSA {
				found = &supportedOps[i]
			}
		}
		switch {
		case options == 1 && opcodeHasSA, options == 2 && !opcodeHasSA && knownOpcode(reqOp):
			c.fail(SenseInvalidFieldInCDB)
			return
		case options == 2 && !opcodeHasSA:
			found = nil
		}
		if found == nil {
			p := c.alloc(4)
			p[1] = 0x01 // SUPPORT: not supported
			break
		}
		usage := found.usageData()
		n := 4 + len(usage)
		if rctd {
			n += 12
		}
		p := c.alloc(n)
		p[1] = 0x03 // SUPPORT: supported as the standard says
		if rctd {
			p[1] |= 0x80 // CTDP
			timeoutsDescriptor(p[4+len(usage):])
		}
		putU16(p[2:], uint16(len(usage)))
		copy(p[4:], usage)
	default:
		c.fail(SenseInvalidFieldInCDB)
		return
	}
	truncate(c, alloc)
}

func knownOpcode(op byte) bool {
	for _, s := range supportedOps {
		if s.opcode == op {
			return true
		}
	}
	return false
}
