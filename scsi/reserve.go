package scsi

import (
	"sync"
)

// StatusReservationConflict is the SCSI status of a command refused because
// another I_T nexus holds a reservation.
const StatusReservationConflict byte = 0x18

// Operation codes of the reservation commands.
const (
	opReserve6      = 0x16
	opRelease6      = 0x17
	opReserve10     = 0x56
	opRelease10     = 0x57
	opPersistentIn  = 0x5E
	opPersistentOut = 0x5F
)

// Persistent reservation types (SPC-5 table 216).
const (
	prWriteExclusive       = 1
	prExclusiveAccess      = 3
	prWriteExclusiveRegs   = 5
	prExclusiveAccessRegs  = 6
	prWriteExclusiveAll    = 7
	prExclusiveAccessAll   = 8
	senseInvalidPRRelease  = 0x04 // ASCQ of INVALID RELEASE OF PERSISTENT RESERVATION
	prReservationKeyLength = 24
)

// SenseInvalidRelease is INVALID RELEASE OF PERSISTENT RESERVATION.
var SenseInvalidRelease = Sense{Key: KeyIllegalRequest, ASC: 0x26, ASCQ: senseInvalidPRRelease}

// reservations holds the SPC-2 reservation (RESERVE/RELEASE) and the
// persistent reservation state of one LU. Persistent state lives as long as
// the LU (APTPL is not supported: it does not survive a restart).
type reservations struct {
	mu sync.Mutex // guards the fields below

	// spc2Holder is the I_T nexus holding a RESERVE(6/10), or "".
	spc2Holder string

	generation uint32
	keys       map[string]uint64 // registered I_T nexus -> reservation key
	holder     string            // nexus holding the PR ("" when none; any registrant for *All types)
	prType     byte              // 0 when no persistent reservation
}

func allRegistrants(t byte) bool { return t == prWriteExclusiveAll || t == prExclusiveAccessAll }

// isHolderLocked reports whether nexus holds the persistent reservation.
func (r *reservations) isHolderLocked(nexus string) bool {
	if r.prType == 0 {
		return false
	}
	if allRegistrants(r.prType) {
		_, ok := r.keys[nexus]
		return ok
	}
	return r.holder == nexus
}

// access classes of commands under a reservation.
const (
	accessFree = iota // allowed whatever the reservation
	accessRead
	accessWrite
)

func accessClass(cdb []byte) int {
	switch cdb[0] {
	case opInquiry, opReportLUNs, opRequestSense, opPersistentIn, opPersistentOut,
		opMaintenanceIn, opReadCapacity10, opTestUnitReady:
		return accessFree
	case opServiceActionIn16:
		if len(cdb) > 1 && cdb[1]&0x1F == saReadCapacity16 {
			return accessFree
		}
		return accessRead
	case opRead6, opRead10, opRead12, opRead16, opVerify10, opVerify12, opVerify16,
		opPrefetch10, opPrefetch16, opModeSense6, opModeSense10:
		return accessRead
	}
	return accessWrite
}

// conflict reports whether a command from nexus must end in RESERVATION
// CONFLICT (SPC-2 5.5.1 and SPC-5 table 215).
func (r *reservations) conflict(nexus string, cdb []byte) bool {
	class := accessClass(cdb)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.spc2Holder != "" && r.spc2Holder != nexus {
		switch cdb[0] {
		case opInquiry, opReportLUNs, opRequestSense, opRelease6, opRelease10, opMaintenanceIn:
			return false
		}
		return true
	}
	if r.prType == 0 || class == accessFree || r.isHolderLocked(nexus) {
		return false
	}
	_, registered := r.keys[nexus]
	switch r.prType {
	case prWriteExclusive:
		return class == accessWrite
	case prExclusiveAccess:
		return true
	case prWriteExclusiveRegs, prWriteExclusiveAll:
		return class == accessWrite && !registered
	case prExclusiveAccessRegs, prExclusiveAccessAll:
		return !registered
	}
	return false
}

// NexusLost releases what an I_T nexus held that does not outlive it: its
// RESERVE(6/10). Persistent registrations stay. Transports call it when a
// session ends.
func (lu *LU) NexusLost(nexus string) {
	r := &lu.res
	r.mu.Lock()
	if r.spc2Holder == nexus {
		r.spc2Holder = ""
	}
	r.mu.Unlock()
}

// Reset is a LOGICAL UNIT RESET: it releases any RESERVE(6/10).
// Persistent reservations survive it.
func (lu *LU) Reset() {
	r := &lu.res
	r.mu.Lock()
	r.spc2Holder = ""
	r.mu.Unlock()
}

// reserve serves RESERVE(6/10) and RELEASE(6/10) (SPC-2). They conflict
// with a persistent reservation.
func (lu *LU) reserve(c *Command) {
	r := &lu.res
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.prType != 0 || len(r.keys) > 0 {
		c.conflict()
		return
	}
	switch c.CDB[0] {
	case opReserve6, opReserve10:
		if r.spc2Holder != "" && r.spc2Holder != c.Initiator {
			c.conflict()
			return
		}
		r.spc2Holder = c.Initiator
	default:
		if r.spc2Holder == c.Initiator {
			r.spc2Holder = ""
		}
	}
}

// persistentIn serves PERSISTENT RESERVE IN: READ KEYS, READ RESERVATION,
// REPORT CAPABILITIES and READ FULL STATUS.
func (lu *LU) persistentIn(c *Command) {
	alloc := int(getU16(c.CDB[7:]))
	r := &lu.res
	r.mu.Lock()
	defer r.mu.Unlock()
	switch c.CDB[1] & 0x1F {
	case 0: // READ KEYS
		p := c.alloc(8 + 8*len(r.keys))
		putU32(p, r.generation)
		putU32(p[4:], uint32(8*len(r.keys)))
		i := 0
		for _, k := range sortedKeys(r.keys) {
			putU64(p[8+8*i:], k.key)
			i++
		}
	case 1: // READ RESERVATION
		if r.prType == 0 {
			p := c.alloc(8)
			putU32(p, r.generation)
			break
		}
		p := c.alloc(24)
		putU32(p, r.generation)
		putU32(p[4:], 16)
		if !allRegistrants(r.prType) {
			putU64(p[8:], r.keys[r.holder])
		}
		p[21] = r.prType // scope 0 (LU_SCOPE)
	case 2: // REPORT CAPABILITIES
		p := c.alloc(8)
		putU16(p, 8)
		p[3] = 0x80 | 0x10 // TMV, ALLOW COMMANDS 001b; CRH, SIP_C, ATP_C, PTPL_C 0
		p[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02
		p[5] = 0x01
	case 3: // READ FULL STATUS
		var descs [][]byte
		for _, k := range sortedKeys(r.keys) {
			tid := transportID(k.nexus)
			d := make([]byte, 24+len(tid))
			putU64(d, k.key)
			if r.isHolderLocked(k.nexus) {
				d[12] = 0x01 // R_HOLDER
				d[13] = r.prType
			}
			putU16(d[18:], 1) // RELATIVE TARGET PORT IDENTIFIER
			putU32(d[20:], uint32(len(tid)))
			copy(d[24:], tid)
			descs = append(descs, d)
		}
		n := 8
		for _, d := range descs {
			n += len(d)
		}
		p := c.alloc(n)
		putU32(p, r.generation)
		putU32(p[4:], uint32(n-8))
		at := 8
		for _, d := range descs {
			at += copy(p[at:], d)
		}
	default:
		c.fail(SenseInvalidFieldInCDB)
		return
	}
	truncate(c, alloc)
}

type nexusKey struct {
	nexus string
	key   uint64
}

func sortedKeys(m map[string]uint64) []nexusKey {
	out := make([]nexusKey, 0, len(m))
	for n, k := range m {
		out = append(out, nexusKey{n, k})
	}
	for i := 1; i < len(out); i++ { // insertion sort: few registrants
		for j := i; j > 0 && out[j].nexus < out[j-1].nexus; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// transportID encodes an iSCSI TransportID (SPC-5 7.6.4.6, format 01b:
// "name,i,0xISID"), padded with NULs to a multiple of 4 bytes.
func transportID(nexus string) []byte {
	n := (len(nexus) + 1 + 3) &^ 3
	if n < 20 {
		n = 20
	}
	p := make([]byte, 4+n)
	p[0] = 0x40 | 0x05
	putU16(p[2:], uint16(n))
	copy(p[4:], nexus)
	return p
}

// persistentOut serves PERSISTENT RESERVE OUT: REGISTER, RESERVE,
// RELEASE, CLEAR, PREEMPT, PREEMPT AND ABORT and REGISTER AND IGNORE
// EXISTING KEY, with LU scope only and without APTPL or SPEC_I_PT.
func (lu *LU) persistentOut(c *Command) {
	cdb := c.CDB
	sa := cdb[1] & 0x1F
	scope, typ := cdb[2]>>4, cdb[2]&0x0F
	plen := int64(getU32(cdb[5:]))
	if sa > 6 {
		c.fail(SenseInvalidFieldInCDB)
		return
	}
	if plen != prReservationKeyLength {
		c.fail(SenseParamListLength)
		return
	}
	p, ok := dataOut(c, plen)
	if !ok {
		return
	}
	key, saKey := getU64(p), getU64(p[8:])
	if p[20]&0x09 != 0 { // SPEC_I_PT, APTPL
		c.fail(SenseInvalidFieldInParam)
		return
	}
	nexus := c.Initiator
	r := &lu.res
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys == nil {
		r.keys = map[string]uint64{}
	}
	if r.spc2Holder != "" && r.spc2Holder != nexus {
		c.conflict()
		return
	}
	cur, registered := r.keys[nexus]
	switch sa {
	case 0, 6: // REGISTER, REGISTER AND IGNORE EXISTING KEY
		if sa == 0 && (registered && key != cur || !registered && key != 0) {
			c.conflict()
			return
		}
		switch {
		case saKey == 0 && registered:
			r.unregisterLocked(nexus)
		case saKey != 0:
			r.keys[nexus] = saKey
		}
		r.generation++
		return
	}
	if !registered || key != cur {
		c.conflict()
		return
	}
	switch sa {
	case 1: // RESERVE
		if scope != 0 || !validPRType(typ) {
			c.fail(SenseInvalidFieldInCDB)
			return
		}
		switch {
		case r.prType == 0:
			r.prType, r.holder = typ, nexus
		case r.isHolderLocked(nexus) && r.prType == typ:
		default:
			c.conflict()
		}
	case 2: // RELEASE
		if r.prType == 0 || !r.isHolderLocked(nexus) {
			return
		}
		if scope != 0 || typ != r.prType {
			c.fail(SenseInvalidRelease)
			return
		}
		r.prType, r.holder = 0, ""
	case 3: // CLEAR
		clear(r.keys)
		r.prType, r.holder = 0, ""
		r.generation++
	case 4, 5: // PREEMPT, PREEMPT AND ABORT
		if scope != 0 || !validPRType(typ) {
			c.fail(SenseInvalidFieldInCDB)
			return
		}
		if r.prType != 0 && allRegistrants(r.prType) && saKey == 0 {
			// Preempting an all-registrants reservation: every other
			// registrant goes, the preempter holds the new one.
			for n := range r.keys {
				if n != nexus {
					delete(r.keys, n)
				}
			}
			r.prType, r.holder = typ, nexus
			r.generation++
			return
		}
		if saKey == 0 {
			c.fail(SenseInvalidFieldInParam)
			return
		}
		holderKey, hasHolder := uint64(0), r.prType != 0 && !allRegistrants(r.prType)
		if hasHolder {
			holderKey = r.keys[r.holder]
		}
		removed := false
		for n, k := range r.keys {
			if k == saKey && n != nexus {
				delete(r.keys, n)
				removed = true
			}
		}
		if hasHolder && saKey == holderKey {
			r.prType, r.holder = typ, nexus
		} else if !removed {
			c.conflict()
			return
		}
		r.generation++
	}
}

func validPRType(t byte) bool {
	switch t {
	case prWriteExclusive, prExclusiveAccess, prWriteExclusiveRegs,
		prExclusiveAccessRegs, prWriteExclusiveAll, prExclusiveAccessAll:
		return true
	}
	return false
}

// unregisterLocked removes nexus's registration and, when that ends the
// reservation it held, the reservation.
func (r *reservations) unregisterLocked(nexus string) {
	delete(r.keys, nexus)
	switch {
	case r.prType == 0:
	case allRegistrants(r.prType):
		if len(r.keys) == 0 {
			r.prType, r.holder = 0, ""
		}
	case r.holder == nexus:
		r.prType, r.holder = 0, ""
	}
}

// conflict ends the command with RESERVATION CONFLICT (no sense data).
func (c *Command) conflict() {
	c.Release()
	c.DataIn = nil
	c.Status = StatusReservationConflict
	c.Sense = nil
}
