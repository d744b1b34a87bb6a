package scsi

import (
	"math/bits"
	"sync"
)

// Command is one SCSI command and its outcome. The transport sets CDB and
// DataOut, calls Execute, sends DataIn (truncated to the initiator's
// allocation) and the status with Sense, then calls Release.
type Command struct {
	// CDB is the command descriptor block (at least CDBLen(CDB[0]) bytes;
	// extra bytes are ignored).
	CDB []byte
	// DataOut is the data the initiator sent with the command.
	DataOut []byte
	// Initiator names the I_T nexus the command came from (for iSCSI the
	// initiator port name "iqn...,i,0xISID"); reservations are held by it.
	Initiator string

	// DataIn is the data for the initiator; nil when there is none.
	DataIn []byte
	// Status is the SCSI status (StatusGood or StatusCheckCondition).
	Status byte
	// Sense is fixed-format sense data when Status is CHECK CONDITION.
	Sense []byte

	senseBuf [fixedSenseLen]byte
	pooled   *[]byte
}

func (c *Command) reset() {
	c.Release()
	c.DataIn = nil
	c.Status = StatusGood
	c.Sense = nil
}

// fail ends the command with CHECK CONDITION and the given sense, dropping
// any Data-In.
func (c *Command) fail(s Sense) {
	c.Release()
	c.DataIn = nil
	c.Status = StatusCheckCondition
	c.Sense = s.encode(c.senseBuf[:])
}

// Fail ends the command with CHECK CONDITION and the given sense. Transports
// use it for conditions they detect themselves (e.g. a Data-Out length that
// does not match the CDB).
func (c *Command) Fail(s Sense) { c.reset(); c.fail(s) }

// alloc returns a zeroed Data-In buffer of n bytes, pooled when large.
func (c *Command) alloc(n int) []byte {
	c.Release()
	if n < minPooled {
		c.DataIn = make([]byte, n)
		return c.DataIn
	}
	c.pooled = getBuf(n)
	c.DataIn = (*c.pooled)[:n]
	return c.DataIn
}

// Release returns a pooled Data-In buffer. DataIn must not be used
// afterwards. It is safe to call more than once.
func (c *Command) Release() {
	if c.pooled != nil {
		putBuf(c.pooled)
		c.pooled = nil
		c.DataIn = nil
	}
}

// Buffer pool: one sync.Pool per power-of-two size class from 4 KiB up.
const (
	minPooled  = 4096
	minClass   = 12 // log2(minPooled)
	numClasses = 14 // up to 32 MiB
)

var bufPools [numClasses]sync.Pool

func sizeClass(n int) int {
	if n <= minPooled {
		return 0
	}
	return bits.Len(uint(n-1)) - minClass
}

// getBuf returns a buffer of length >= n; its contents are zeroed.
func getBuf(n int) *[]byte {
	cl := sizeClass(n)
	if cl >= numClasses {
		b := make([]byte, n)
		return &b
	}
	if v := bufPools[cl].Get(); v != nil {
		b := v.(*[]byte)
		clear((*b)[:n])
		return b
	}
	b := make([]byte, minPooled<<cl)
	return &b
}

// GetBuffer returns a pooled buffer of at least n bytes, for transports
// collecting Data-Out. Return it with PutBuffer.
func GetBuffer(n int) *[]byte { return getBuf(n) }

// PutBuffer returns a buffer obtained from GetBuffer.
func PutBuffer(b *[]byte) { putBuf(b) }

func putBuf(b *[]byte) {
	c := cap(*b)
	if c < minPooled || c&(c-1) != 0 {
		return
	}
	cl := sizeClass(c)
	if cl < numClasses {
		*b = (*b)[:c]
		bufPools[cl].Put(b)
	}
}
