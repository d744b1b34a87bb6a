package scsi

import "bytes"

// Mode page codes.
const (
	pageCaching      = 0x08
	pageControl      = 0x0A
	pageProvisioning = 0x1C // with subpage 0x02
	subProvisioning  = 0x02
	pageAll          = 0x3F
	subAll           = 0xFF
)

// modePage returns the current (or, with changeable, the changeable mask
// of) one mode page. No field is changeable.
func (lu *LU) modePage(code, sub byte, changeable bool) []byte {
	var p []byte
	switch {
	case code == pageCaching && sub == 0:
		p = make([]byte, 20)
		p[0], p[1] = pageCaching, 0x12
		if lu.caps.Flush && !changeable {
			p[2] = 0x04 // WCE: a volatile cache exists (SYNCHRONIZE CACHE flushes it)
		}
	case code == pageControl && sub == 0:
		p = make([]byte, 12)
		p[0], p[1] = pageControl, 0x0A
		if !changeable {
			p[3] = 0x10 // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering
			if !lu.writable {
				p[4] = 0x08 // SWP: software write protect
			}
			putU16(p[8:], 0xFFFF) // BUSY TIMEOUT PERIOD: unlimited
		}
	case code == pageProvisioning && sub == subProvisioning:
		p = make([]byte, 16)
		p[0], p[1] = pageProvisioning|0x40, subProvisioning // SPF
		putU16(p[2:], 12)
	}
	return p
}

// modePages returns the pages a MODE SENSE asks for, or nil for an
// unsupported page.
func (lu *LU) modePages(code, sub byte, changeable bool) [][]byte {
	type id struct{ code, sub byte }
	all := []id{{pageCaching, 0}, {pageControl, 0}, {pageProvisioning, subProvisioning}}
	var out [][]byte
	for _, pg := range all {
		match := false
		switch {
		case code == pageAll && sub == 0:
			match = pg.sub == 0
		case code == pageAll && sub == subAll:
			match = true
		case code == pg.code && (sub == pg.sub || sub == subAll):
			match = true
		}
		if match {
			out = append(out, lu.modePage(pg.code, pg.sub, changeable))
		}
	}
	return out
}

// modeSense serves MODE SENSE(6) and MODE SENSE(10).
func (lu *LU) modeSense(c *Command) {
	cdb := c.CDB
	ten := cdb[0] == opModeSense10
	dbd := cdb[1]&0x08 != 0
	llbaa := ten && cdb[1]&0x10 != 0
	pc := cdb[2] >> 6
	code, sub := cdb[2]&0x3F, cdb[3]
	alloc := int(cdb[4])
	if ten {
		alloc = int(getU16(cdb[7:]))
	}
	if pc == 3 {
		c.fail(SenseSavingNotSupported)
		return
	}
	pages := lu.modePages(code, sub, pc == 1)
	if pages == nil {
		c.fail(SenseInvalidFieldInCDB)
		return
	}
	var bd []byte
	if !dbd {
		if llbaa {
			bd = make([]byte, 16)
			putU64(bd, lu.blocks)
			putU32(bd[12:], uint32(lu.blockSize))
		} else {
			// Short LBA mode parameter block descriptor (SBC-4 6.5.2).
			bd = make([]byte, 8)
			putU32(bd, uint32(min(lu.blocks, 0xFFFFFFFF)))
			putU32(bd[4:], uint32(lu.blockSize)) // byte 4 reserved: < 2^24
		}
	}
	devSpecific := byte(0x10) // DPOFUA
	if !lu.writable {
		devSpecific |= 0x80 // WP
	}
	hdr := 4
	if ten {
		hdr = 8
	}
	total := hdr + len(bd)
	for _, pg := range pages {
		total += len(pg)
	}
	p := c.alloc(total)
	if ten {
		putU16(p, uint16(total-2))
		p[3] = devSpecific
		if llbaa && bd != nil {
			p[4] = 0x01 // LONGLBA
		}
		putU16(p[6:], uint16(len(bd)))
	} else {
		p[0] = byte(min(total-1, 255))
		p[2] = devSpecific
		p[3] = byte(len(bd))
	}
	at := hdr + copy(p[hdr:], bd)
	for _, pg := range pages {
		at += copy(p[at:], pg)
	}
	truncate(c, alloc)
}

// modeSelect serves MODE SELECT(6/10). Nothing is changeable: a page is
// accepted when it equals the current page, and a block descriptor when it
// names the current block size.
func (lu *LU) modeSelect(c *Command) {
	cdb := c.CDB
	ten := cdb[0] == opModeSelect10
	if cdb[1]&0x01 != 0 { // SP
		c.fail(SenseInvalidFieldInCDB)
		return
	}
	plen := int64(cdb[4])
	if ten {
		plen = int64(getU16(cdb[7:]))
	}
	if plen == 0 {
		return
	}
	p, ok := dataOut(c, plen)
	if !ok {
		return
	}
	hdr, bdLen := 4, 0
	if ten {
		hdr = 8
		if len(p) < hdr {
			c.fail(SenseParamListLength)
			return
		}
		bdLen = int(getU16(p[6:]))
	} else {
		if len(p) < hdr {
			c.fail(SenseParamListLength)
			return
		}
		bdLen = int(p[3])
	}
	if bdLen > len(p)-hdr {
		c.fail(SenseParamListLength)
		return
	}
	bd := p[hdr : hdr+bdLen]
	switch {
	case bdLen == 0:
	case bdLen == 8 && !(ten && p[4]&0x01 != 0):
		if bs := getU32(bd[4:]) & 0xFFFFFF; bs != lu.blockSize {
			c.fail(SenseInvalidFieldInParam)
			return
		}
	case bdLen == 16 && ten && p[4]&0x01 != 0:
		if getU32(bd[12:]) != lu.blockSize {
			c.fail(SenseInvalidFieldInParam)
			return
		}
	default:
		c.fail(SenseInvalidFieldInParam)
		return
	}
	rest := p[hdr+bdLen:]
	for len(rest) > 0 {
		if len(rest) < 2 {
			c.fail(SenseParamListLength)
			return
		}
		code, sub, n := rest[0]&0x3F, byte(0), int(rest[1])+2
		if rest[0]&0x40 != 0 { // SPF: sub-page format
			if len(rest) < 4 {
				c.fail(SenseParamListLength)
				return
			}
			sub, n = rest[1], int(getU16(rest[2:]))+4
		}
		if n > len(rest) {
			c.fail(SenseParamListLength)
			return
		}
		cur := lu.modePage(code, sub, false)
		got := rest[:n]
		if cur == nil || len(cur) != n || got[0]&0x7F != cur[0] || !bytes.Equal(got[1:], cur[1:]) {
			c.fail(SenseInvalidFieldInParam)
			return
		}
		rest = rest[n:]
	}
}
