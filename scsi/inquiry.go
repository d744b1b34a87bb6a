package scsi

// VPD page codes.
const (
	vpdSupported       = 0x00
	vpdSerial          = 0x80
	vpdDeviceID        = 0x83
	vpdBlockLimits     = 0xB0
	vpdCharacteristics = 0xB1
	vpdProvisioning    = 0xB2
)

// Provisioning types of VPD page 0xB2.
const (
	provFull     = 0
	provResource = 1
	provThin     = 2
)

// Version descriptors (SPC-5 table 40) claimed in standard INQUIRY data.
var versionDescriptors = []uint16{
	0x00A0, // SAM-5
	0x0960, // iSCSI
	0x0460, // SPC-4
	0x04C0, // SBC-3
}

// inquiry answers INQUIRY: standard data, or a VPD page with EVPD.
func (lu *LU) inquiry(c *Command) {
	cdb := c.CDB
	evpd := cdb[1]&0x01 != 0
	if cdb[1]&0x02 != 0 { // CMDDT is obsolete
		c.fail(SenseInvalidFieldInCDB)
		return
	}
	alloc := int(getU16(cdb[3:]))
	if !evpd {
		if cdb[2] != 0 {
			c.fail(SenseInvalidFieldInCDB)
			return
		}
		lu.standardInquiry(c, 0x00)
		truncate(c, alloc)
		return
	}
	var p []byte
	switch cdb[2] {
	case vpdSupported:
		p = c.alloc(4 + 6)
		copy(p[4:], []byte{vpdSupported, vpdSerial, vpdDeviceID, vpdBlockLimits, vpdCharacteristics, vpdProvisioning})
	case vpdSerial:
		serial := lu.cfg.Serial
		if len(serial) > 252 {
			serial = serial[:252]
		}
		p = c.alloc(4 + len(serial))
		copy(p[4:], pad(serial, " ", len(serial)))
	case vpdDeviceID:
		p = lu.deviceID(c)
	case vpdBlockLimits:
		p = lu.blockLimits(c)
	case vpdCharacteristics:
		p = c.alloc(64)
		putU16(p[4:], 1) // MEDIUM ROTATION RATE: non-rotating
	case vpdProvisioning:
		p = c.alloc(8)
		var b5 byte
		b5 |= 0x80 | 0x40 | 0x20 // LBPU, LBPWS, LBPWS10
		if lu.cfg.LBPRZ {
			b5 |= 0x04 // LBPRZ = 001b
		}
		if lu.cfg.Anchor {
			b5 |= 0x02 // ANC_SUP
		}
		p[5] = b5 // DP = 0: no provisioning group descriptor
		if lu.thin {
			p[6] = provThin
		} else {
			p[6] = provResource
		}
	default:
		c.fail(SenseInvalidFieldInCDB)
		return
	}
	p[1] = cdb[2]
	putU16(p[2:], uint16(len(p)-4))
	truncate(c, alloc)
}

// standardInquiry builds the 66 bytes of standard INQUIRY data; qualifier
// is the peripheral qualifier (0 for a present LU, 3 for an absent one).
func (lu *LU) standardInquiry(c *Command, qualifier byte) {
	p := c.alloc(66)
	p[0] = qualifier<<5 | 0x00 // direct access block device
	if qualifier != 0 {
		p[0] = 0x7F
	}
	p[2] = 0x06        // SPC-4
	p[3] = 0x10 | 0x02 // HISUP, RESPONSE DATA FORMAT 2
	p[4] = byte(len(p) - 5)
	p[7] = 0x02 // CMDQUE
	copy(p[8:16], lu.vendor)
	copy(p[16:32], lu.product)
	copy(p[32:36], lu.revision)
	for i, v := range versionDescriptors {
		putU16(p[58+2*i:], v)
	}
}

// deviceID builds VPD 0x83: an NAA designator and a T10 vendor ID
// designator, both for the logical unit.
func (lu *LU) deviceID(c *Command) []byte {
	t10 := lu.vendor + lu.product + lu.cfg.Serial
	if len(t10) > 200 {
		t10 = t10[:200]
	}
	p := c.alloc(4 + (4 + 8) + (4 + len(t10)))
	d := p[4:]
	d[0] = 0x01 // protocol 0, code set binary
	d[1] = 0x03 // association LU, designator type NAA
	d[3] = 8
	putU64(d[4:], lu.naa)
	d = d[12:]
	d[0] = 0x02 // code set ASCII
	d[1] = 0x01 // association LU, designator type T10 vendor ID
	d[3] = byte(len(t10))
	copy(d[4:], t10)
	return p
}

// blockLimits builds VPD 0xB0 (SBC-4 6.6.4), page length 0x3C.
func (lu *LU) blockLimits(c *Command) []byte {
	p := c.alloc(64)
	// WSNZ = 0: WRITE SAME with 0 blocks writes to the end of the medium.
	p[5] = maxCompareAndWrite
	putU16(p[6:], uint16(min(1<<lu.physExp, 0xFFFF))) // OPTIMAL TRANSFER LENGTH GRANULARITY
	putU32(p[8:], uint32(min(lu.maxXfer, 0xFFFFFFFF)))
	putU32(p[12:], uint32(lu.optXfer))
	putU32(p[16:], uint32(min(lu.maxXfer, 0xFFFFFFFF))) // MAXIMUM PREFETCH LENGTH
	putU32(p[20:], maxUnmapBlocks)
	putU32(p[24:], maxUnmapDescriptors)
	putU32(p[28:], uint32(min(lu.unmapGran, 0xFFFFFFFF)))
	if lu.unmapGran > 1 {
		putU32(p[32:], uint32(lu.unmapAlign)|0x80000000) // UGAVALID
	}
	putU64(p[36:], maxUnmapBlocks) // MAXIMUM WRITE SAME LENGTH
	return p
}

// readCapacity10 answers READ CAPACITY(10).
func (lu *LU) readCapacity10(c *Command) {
	cdb := c.CDB
	pmi := cdb[8]&0x01 != 0
	if !pmi && getU32(cdb[2:]) != 0 {
		c.fail(SenseInvalidFieldInCDB)
		return
	}
	p := c.alloc(8)
	last := lu.blocks - 1
	putU32(p, uint32(min(last, 0xFFFFFFFF)))
	putU32(p[4:], uint32(lu.blockSize))
}

// readCapacity16 answers READ CAPACITY(16) with LBPME, LBPRZ and the
// physical block exponent.
func (lu *LU) readCapacity16(c *Command) {
	alloc := int(getU32(c.CDB[10:]))
	p := c.alloc(32)
	putU64(p, lu.blocks-1)
	putU32(p[8:], uint32(lu.blockSize))
	p[13] = byte(lu.physExp)
	p[14] = 0x80 // LBPME: UNMAP and WRITE SAME UNMAP are accepted
	if lu.cfg.LBPRZ {
		p[14] |= 0x40
	}
	truncate(c, alloc)
}

// truncate cuts Data-In to the allocation length of the CDB.
func truncate(c *Command, alloc int) {
	if len(c.DataIn) > alloc {
		c.DataIn = c.DataIn[:alloc]
	}
}
