package qcow2

// L1 and L2 entry bits.
const (
	entryOffsetMask = 0x00fffffffffffe00 // bits 9-55
	entryCopied     = 1 << 63            // refcount is exactly one
	entryCompressed = 1 << 62
	entryZero       = 1 << 0 // standard cluster reads as zeros (v3, no extended L2)
	l1ReservedMask  = 0x7f000000000001ff
	l2ReservedMask  = 0x3f000000000001fe
)

// allUnits returns the unit mask for n units (1 or 32).
func allUnits(n int) uint32 {
	if n >= 32 {
		return ^uint32(0)
	}
	return 1<<n - 1
}

// mapping is one decoded L2 entry. A standard cluster is divided into
// units: the whole cluster, or 32 subclusters with extended L2 entries. A
// unit is allocated (its data is at host), zero (reads as zeros) or neither
// (unallocated: read the backing file).
type mapping struct {
	host       int64 // host cluster offset, 0 if none
	copied     bool  // refcount of host is exactly one
	compressed bool
	// compOff and compLen locate compressed data: compLen is the number of
	// bytes that may hold it (whole 512-byte sectors from compOff's).
	compOff, compLen int64
	alloc, zero      uint32
}

// l2Format describes how to decode entries of one image.
type l2Format struct {
	clusterBits uint32
	extended    bool
	v3          bool
}

func (f l2Format) units() int {
	if f.extended {
		return 32
	}
	return 1
}

// decode turns an entry (and the bitmap with extended L2) into a mapping. It
// returns an error for entries that cannot be valid.
func (f l2Format) decode(raw, bitmap uint64) (mapping, error) {
	var m mapping
	if raw&entryCompressed != 0 {
		x := 62 - (f.clusterBits - 8)
		m.compressed = true
		m.compOff = int64(raw & (1<<x - 1))
		sectors := int64((raw&(1<<62-1))>>x) + 1
		m.compLen = sectors*512 - m.compOff%512
		m.alloc = allUnits(f.units())
		if m.compOff == 0 {
			return m, corruptf("compressed cluster at host offset 0")
		}
		return m, nil
	}
	m.host = int64(raw & entryOffsetMask)
	m.copied = raw&entryCopied != 0
	if m.host&(1<<f.clusterBits-1) != 0 {
		return m, corruptf("L2 entry 0x%x: host offset not cluster aligned", raw)
	}
	if f.extended {
		m.alloc = uint32(bitmap)
		m.zero = uint32(bitmap >> 32)
		if m.alloc&m.zero != 0 {
			return m, corruptf("L2 bitmap 0x%x marks subclusters both allocated and zero", bitmap)
		}
		if m.alloc != 0 && m.host == 0 {
			return m, corruptf("L2 entry has allocated subclusters but no host offset")
		}
		return m, nil
	}
	if f.v3 && raw&entryZero != 0 {
		m.zero = 1
	} else if m.host != 0 {
		m.alloc = 1
	}
	return m, nil
}

// encode turns a mapping of a standard cluster back into an entry and
// bitmap. Compressed mappings keep their raw entry and are never encoded.
func (f l2Format) encode(m mapping) (raw, bitmap uint64) {
	raw = uint64(m.host) & entryOffsetMask
	if m.copied && m.host != 0 {
		raw |= entryCopied
	}
	if f.extended {
		return raw, uint64(m.alloc) | uint64(m.zero)<<32
	}
	if m.zero&1 != 0 {
		raw |= entryZero
	}
	return raw, 0
}

// unitRange returns the mask of units [first, last] .
func unitRange(first, last int) uint32 {
	return allUnits(last+1) &^ allUnits(first)
}
