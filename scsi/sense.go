package scsi

import (
	"errors"

	"github.com/thinblk/thinblk/block"
)

// SCSI status codes (SAM-5).
const (
	StatusGood           byte = 0x00
	StatusCheckCondition byte = 0x02
	StatusConditionMet   byte = 0x04
	StatusBusy           byte = 0x08
	StatusTaskAborted    byte = 0x40
)

// Sense keys (SPC-5 table 48).
const (
	KeyNoSense        byte = 0x0
	KeyNotReady       byte = 0x2
	KeyMediumError    byte = 0x3
	KeyHardwareError  byte = 0x4
	KeyIllegalRequest byte = 0x5
	KeyUnitAttention  byte = 0x6
	KeyDataProtect    byte = 0x7
	KeyAbortedCommand byte = 0xB
	KeyMiscompare     byte = 0xE
)

// Sense is one sense condition: a key and an additional sense code and
// qualifier, plus the INFORMATION field when Info is set.
type Sense struct {
	Key, ASC, ASCQ byte
	InfoValid      bool
	Info           uint64
}

// The additional sense codes this package reports, named as in SPC-5 annex
// F and as LIO and QEMU use them.
var (
	SenseInvalidOpcode       = Sense{Key: KeyIllegalRequest, ASC: 0x20, ASCQ: 0x00}
	SenseLBAOutOfRange       = Sense{Key: KeyIllegalRequest, ASC: 0x21, ASCQ: 0x00}
	SenseInvalidFieldInCDB   = Sense{Key: KeyIllegalRequest, ASC: 0x24, ASCQ: 0x00}
	SenseLUNotSupported      = Sense{Key: KeyIllegalRequest, ASC: 0x25, ASCQ: 0x00}
	SenseInvalidFieldInParam = Sense{Key: KeyIllegalRequest, ASC: 0x26, ASCQ: 0x00}
	SenseParamListLength     = Sense{Key: KeyIllegalRequest, ASC: 0x1A, ASCQ: 0x00}
	SenseInvalidFieldInIU    = Sense{Key: KeyIllegalRequest, ASC: 0x0E, ASCQ: 0x03}
	SenseSavingNotSupported  = Sense{Key: KeyIllegalRequest, ASC: 0x39, ASCQ: 0x00}
	SenseWriteProtected      = Sense{Key: KeyDataProtect, ASC: 0x27, ASCQ: 0x00}
	SenseSpaceAllocFailed    = Sense{Key: KeyDataProtect, ASC: 0x27, ASCQ: 0x07}
	SenseMiscompare          = Sense{Key: KeyMiscompare, ASC: 0x1D, ASCQ: 0x00}
	SenseUnrecoveredRead     = Sense{Key: KeyMediumError, ASC: 0x11, ASCQ: 0x00}
	SenseWriteError          = Sense{Key: KeyMediumError, ASC: 0x0C, ASCQ: 0x00}
	SenseInternalFailure     = Sense{Key: KeyHardwareError, ASC: 0x44, ASCQ: 0x00}
	SenseCommandAborted      = Sense{Key: KeyAbortedCommand, ASC: 0x00, ASCQ: 0x00}
)

// fixedSenseLen is the length of fixed-format sense data (response code
// 0x70) with no additional bytes beyond the sense-key-specific field.
const fixedSenseLen = 18

// encode writes s as fixed-format sense data into p (len >= 18) and returns
// the 18 bytes used.
func (s Sense) encode(p []byte) []byte {
	p = p[:fixedSenseLen]
	clear(p)
	p[0] = 0x70 // current error, fixed format
	if s.InfoValid {
		p[0] |= 0x80
		// The INFORMATION field is 4 bytes in fixed format; larger values
		// cannot be represented there, so VALID is cleared.
		if s.Info > 0xFFFFFFFF {
			p[0] &^= 0x80
		} else {
			putU32(p[3:], uint32(s.Info))
		}
	}
	p[2] = s.Key & 0x0F
	p[7] = fixedSenseLen - 8 // additional sense length
	p[12] = s.ASC
	p[13] = s.ASCQ
	return p
}

// opKind says what a failed backend call was doing, to pick a sense code.
type opKind int

const (
	opRead opKind = iota
	opWrite
	opOther
)

// senseFor maps an error from a block.Driver to sense data: the one table
// of the SCSI export.
//
//	ErrOutOfRange  -> ILLEGAL REQUEST, LBA OUT OF RANGE
//	ErrReadOnly    -> DATA PROTECT, WRITE PROTECTED
//	ErrNoSpace     -> DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT
//	ErrNotSupported, ErrInvalid -> ILLEGAL REQUEST, INVALID FIELD IN CDB
//	reads          -> MEDIUM ERROR, UNRECOVERED READ ERROR
//	writes         -> MEDIUM ERROR, WRITE ERROR
//	anything else  -> HARDWARE ERROR, INTERNAL TARGET FAILURE
func senseFor(kind opKind, err error) Sense {
	switch {
	case errors.Is(err, block.ErrOutOfRange):
		return SenseLBAOutOfRange
	case errors.Is(err, block.ErrReadOnly):
		return SenseWriteProtected
	case errors.Is(err, block.ErrNoSpace):
		return SenseSpaceAllocFailed
	case errors.Is(err, block.ErrNotSupported), errors.Is(err, block.ErrInvalid):
		return SenseInvalidFieldInCDB
	}
	switch kind {
	case opRead:
		return SenseUnrecoveredRead
	case opWrite:
		return SenseWriteError
	}
	return SenseInternalFailure
}
