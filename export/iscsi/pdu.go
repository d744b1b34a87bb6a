package iscsi

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Opcodes (RFC 7143 11.1.1).
const (
	opNopOut      = 0x00
	opSCSICmd     = 0x01
	opTMFReq      = 0x02
	opLoginReq    = 0x03
	opTextReq     = 0x04
	opDataOut     = 0x05
	opLogoutReq   = 0x06
	opSNACK       = 0x10
	opNopIn       = 0x20
	opSCSIResp    = 0x21
	opTMFResp     = 0x22
	opLoginResp   = 0x23
	opTextResp    = 0x24
	opDataIn      = 0x25
	opLogoutResp  = 0x26
	opR2T         = 0x31
	opAsyncMsg    = 0x32
	opReject      = 0x3F
	bhsLen        = 48
	reservedTag   = 0xFFFFFFFF
	flagFinal     = 0x80
	flagImmediate = 0x40
)

// Reject reasons (RFC 7143 11.17.1).
const (
	rejectDigestError     = 0x02
	rejectSNACK           = 0x03
	rejectProtocolError   = 0x04
	rejectNotSupported    = 0x05
	rejectImmediateReject = 0x06
	rejectInvalidField    = 0x09
	rejectWaitingLogout   = 0x0B
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errDigest is a header or data digest mismatch.
var errDigest = errors.New("iscsi: digest mismatch")

// errTooLong is a data segment larger than the negotiated limit.
var errTooLong = errors.New("iscsi: data segment too long")

// pdu is one received PDU: the basic header segment, any additional header
// segments and the data segment (without padding).
type pdu struct {
	bhs  [bhsLen]byte
	ahs  []byte
	data []byte
}

func (p *pdu) opcode() byte      { return p.bhs[0] & 0x3F }
func (p *pdu) immediate() bool   { return p.bhs[0]&flagImmediate != 0 }
func (p *pdu) flags() byte       { return p.bhs[1] }
func (p *pdu) final() bool       { return p.bhs[1]&flagFinal != 0 }
func (p *pdu) ahsLen() int       { return int(p.bhs[4]) * 4 }
func (p *pdu) dataLen() int      { return int(p.bhs[5])<<16 | int(p.bhs[6])<<8 | int(p.bhs[7]) }
func (p *pdu) lun() uint64       { return binary.BigEndian.Uint64(p.bhs[8:]) }
func (p *pdu) itt() uint32       { return binary.BigEndian.Uint32(p.bhs[16:]) }
func (p *pdu) u32(at int) uint32 { return binary.BigEndian.Uint32(p.bhs[at:]) }

// pduReader reads PDUs with optional digests.
type pduReader struct {
	r            *bufio.Reader
	headerDigest bool
	dataDigest   bool
	// maxData is the largest data segment accepted (our
	// MaxRecvDataSegmentLength; during login, a fixed 64 KiB bound).
	maxData int
}

// read reads one PDU. Data is read into buf when it fits (buf is reused by
// the caller between PDUs); p.data aliases it. Lengths are checked before
// any allocation: a data segment over maxData is errTooLong.
func (pr *pduReader) read(p *pdu, buf []byte) error {
	if _, err := io.ReadFull(pr.r, p.bhs[:]); err != nil {
		return err
	}
	ahs := p.ahsLen()
	p.ahs = p.ahs[:0]
	if ahs > 0 {
		p.ahs = make([]byte, ahs) // at most 1020 bytes
		if _, err := io.ReadFull(pr.r, p.ahs); err != nil {
			return err
		}
	}
	if pr.headerDigest {
		var d [4]byte
		if _, err := io.ReadFull(pr.r, d[:]); err != nil {
			return err
		}
		crc := crc32.Update(crc32.Checksum(p.bhs[:], castagnoli), castagnoli, p.ahs)
		if binary.LittleEndian.Uint32(d[:]) != crc {
			return fmt.Errorf("%w in header", errDigest)
		}
	}
	n := p.dataLen()
	if n > pr.maxData {
		return fmt.Errorf("%w: %d bytes, limit %d", errTooLong, n, pr.maxData)
	}
	padded := (n + 3) &^ 3
	if cap(buf) >= padded {
		buf = buf[:padded]
	} else {
		buf = make([]byte, padded)
	}
	if _, err := io.ReadFull(pr.r, buf); err != nil {
		return err
	}
	p.data = buf[:n]
	if pr.dataDigest && n > 0 {
		var d [4]byte
		if _, err := io.ReadFull(pr.r, d[:]); err != nil {
			return err
		}
		if binary.LittleEndian.Uint32(d[:]) != crc32.Checksum(buf, castagnoli) {
			return fmt.Errorf("%w in data", errDigest)
		}
	}
	return nil
}

// outPDU is one PDU to send. The writer fills the sequence numbers named
// by seq just before it encodes the header.
type outPDU struct {
	bhs  [bhsLen]byte
	data []byte
	seq  seqMode
	// release is called once the data has been written (or dropped).
	release func()
	// after is called after the PDU was written and flushed (logout).
	after func()
}

// seqMode says how the writer fills StatSN, ExpCmdSN and MaxCmdSN.
type seqMode int

const (
	seqNone    seqMode = iota // fields already set, or absent
	seqStatus                 // StatSN = next StatSN, then advance it
	seqPeek                   // StatSN = next StatSN, not advanced
	seqCmdOnly                // only ExpCmdSN/MaxCmdSN (Data-In without status)
)

func (o *outPDU) setDataLen(n int) {
	o.bhs[5], o.bhs[6], o.bhs[7] = byte(n>>16), byte(n>>8), byte(n)
}

func (o *outPDU) put32(at int, v uint32) { binary.BigEndian.PutUint32(o.bhs[at:], v) }

// writePDU encodes o to w with the given digests.
func writePDU(w *bufio.Writer, o *outPDU, headerDigest, dataDigest bool) error {
	o.setDataLen(len(o.data))
	if _, err := w.Write(o.bhs[:]); err != nil {
		return err
	}
	if headerDigest {
		var d [4]byte
		binary.LittleEndian.PutUint32(d[:], crc32.Checksum(o.bhs[:], castagnoli))
		w.Write(d[:])
	}
	if len(o.data) == 0 {
		return nil
	}
	w.Write(o.data)
	var zeros [4]byte
	padLen := (4 - len(o.data)%4) % 4
	w.Write(zeros[:padLen])
	if dataDigest {
		crc := crc32.Update(crc32.Checksum(o.data, castagnoli), castagnoli, zeros[:padLen])
		var d [4]byte
		binary.LittleEndian.PutUint32(d[:], crc)
		if _, err := w.Write(d[:]); err != nil {
			return err
		}
	}
	return nil
}

// serialLT compares 32-bit sequence numbers in serial arithmetic (RFC 1982).
func serialLT(a, b uint32) bool { return a != b && int32(a-b) < 0 }

// serialLE is a <= b in serial arithmetic.
func serialLE(a, b uint32) bool { return a == b || serialLT(a, b) }
