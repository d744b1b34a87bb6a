package scsi

import (
	"sort"
	"sync"
)

// Target is a set of logical units addressed by LUN, as one SCSI target
// device presents them. It answers REPORT LUNS itself and reports absent
// LUNs the way SPC-5 asks. It is safe for concurrent use.
type Target struct {
	mu  sync.RWMutex // guards lus
	lus map[uint64]*LU
}

// NewTarget returns a target with no LUNs.
func NewTarget() *Target { return &Target{lus: map[uint64]*LU{}} }

// Add makes lu reachable as LUN n (0..16383), replacing any LU there.
func (t *Target) Add(n uint64, lu *LU) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lus[n] = lu
}

// LU returns the logical unit at LUN n, or nil.
func (t *Target) LU(n uint64) *LU {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.lus[n]
}

// LUNs returns the LUN numbers in increasing order.
func (t *Target) LUNs() []uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]uint64, 0, len(t.lus))
	for n := range t.lus {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// DataOutLen is LU.DataOutLen for LUN n; 0 for an absent LUN.
func (t *Target) DataOutLen(n uint64, cdb []byte) int64 {
	if lu := t.LU(n); lu != nil {
		return lu.DataOutLen(cdb)
	}
	return 0
}

// Execute runs c on LUN n. REPORT LUNS lists the target's LUNs from any LUN;
// INQUIRY to an absent LUN returns peripheral qualifier 011b; other
// commands to an absent LUN fail with LOGICAL UNIT NOT SUPPORTED.
func (t *Target) Execute(n uint64, c *Command) {
	if len(c.CDB) >= 12 && c.CDB[0] == opReportLUNs {
		c.reset()
		reportLUNs(c, t.LUNs())
		return
	}
	if lu := t.LU(n); lu != nil {
		lu.Execute(c)
		return
	}
	c.reset()
	if len(c.CDB) >= 6 && c.CDB[0] == opInquiry && c.CDB[1]&0x03 == 0 && c.CDB[2] == 0 {
		var absent LU
		absent.vendor, absent.product, absent.revision = pad("", "THINBLK", 8), pad("", "NO-LUN", 16), pad("", "0001", 4)
		absent.standardInquiry(c, 3)
		truncate(c, int(getU16(c.CDB[3:])))
		return
	}
	if len(c.CDB) >= 6 && c.CDB[0] == opRequestSense {
		(&LU{}).requestSense(c)
		return
	}
	c.fail(SenseLUNotSupported)
}

// reportLUNs answers REPORT LUNS with single-level LUN addresses
// (peripheral addressing below 256, flat space addressing above).
func reportLUNs(c *Command, luns []uint64) {
	cdb := c.CDB
	if len(cdb) < 12 {
		c.fail(SenseInvalidFieldInCDB)
		return
	}
	alloc := int(getU32(cdb[6:]))
	switch cdb[2] { // SELECT REPORT
	case 0x00, 0x02:
	case 0x01:
		luns = nil // no well-known LUNs
	default:
		c.fail(SenseInvalidFieldInCDB)
		return
	}
	if alloc < 16 {
		c.fail(SenseInvalidFieldInCDB)
		return
	}
	p := c.alloc(8 + 8*len(luns))
	putU32(p, uint32(8*len(luns)))
	for i, n := range luns {
		putU64(p[8+8*i:], EncodeLUN(n))
	}
	truncate(c, alloc)
}

// EncodeLUN returns the 8-byte SAM LUN field for LUN n (n < 16384):
// peripheral device addressing below 256, flat space addressing above.
func EncodeLUN(n uint64) uint64 {
	if n < 256 {
		return n << 48
	}
	return (0x4000 | n&0x3FFF) << 48
}

// DecodeLUN returns the LUN number of an 8-byte SAM LUN field in
// peripheral or flat space addressing; ok is false for other forms.
func DecodeLUN(v uint64) (n uint64, ok bool) {
	first := v >> 48
	if v&0x0000FFFFFFFFFFFF != 0 {
		return 0, false
	}
	switch first >> 14 {
	case 0: // peripheral: bus 0 required
		if first>>8 != 0 {
			return 0, false
		}
		return first & 0xFF, true
	case 1: // flat space
		return first & 0x3FFF, true
	}
	return 0, false
}
