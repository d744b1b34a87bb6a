package iscsi

import (
	"bufio"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"
)

// initiator is a minimal iSCSI initiator for tests: one session, one
// command at a time unless the test drives PDUs itself.
type initiator struct {
	t         testing.TB
	nc        net.Conn
	pr        pduReader
	bw        *bufio.Writer
	cmdSN     uint32
	expStatSN uint32
	itt       uint32
	hd, dd    bool
	maxSend   int // target's MaxRecvDataSegmentLength
	firstB    int
	tsih      uint16
}

func dialInitiator(t testing.TB, addr string) *initiator {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { nc.Close() })
	in := &initiator{t: t, nc: nc, bw: bufio.NewWriter(nc), cmdSN: 100, itt: 1, maxSend: 8192, firstB: 65536}
	in.pr = pduReader{r: bufio.NewReader(nc), maxData: 1 << 24}
	return in
}

func (in *initiator) send(bhs [bhsLen]byte, data []byte) error {
	o := &outPDU{bhs: bhs, data: data}
	if err := writePDU(in.bw, o, in.hd, in.dd); err != nil {
		return err
	}
	return in.bw.Flush()
}

func (in *initiator) recv() (*pdu, error) {
	p := &pdu{}
	if err := in.pr.read(p, nil); err != nil {
		return nil, err
	}
	return p, nil
}

// loginPDU sends one login request and returns the response.
func (in *initiator) loginPDU(transit bool, csg, nsg int, keys []kv) (*pdu, map[string]string) {
	in.t.Helper()
	var b [bhsLen]byte
	b[0] = opLoginReq | flagImmediate
	if transit {
		b[1] = 0x80 | byte(csg)<<2 | byte(nsg)
	} else {
		b[1] = byte(csg) << 2
	}
	copy(b[8:14], []byte{0x80, 1, 2, 3, 4, 5})
	binary.BigEndian.PutUint32(b[16:], in.itt)
	binary.BigEndian.PutUint32(b[24:], in.cmdSN)
	binary.BigEndian.PutUint32(b[28:], in.expStatSN)
	if err := in.send(b, encodeText(nil, keys)); err != nil {
		in.t.Fatal(err)
	}
	p, err := in.recv()
	if err != nil {
		in.t.Fatalf("login response: %v", err)
	}
	if p.opcode() != opLoginResp {
		in.t.Fatalf("login answered with opcode %#x", p.opcode())
	}
	in.expStatSN = p.u32(24) + 1
	pairs, err := parseText(p.data)
	if err != nil {
		in.t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range pairs {
		m[kv.key] = kv.value
	}
	return p, m
}

func loginStatus(p *pdu) uint16 { return uint16(p.bhs[36])<<8 | uint16(p.bhs[37]) }

// login runs a whole login; chap, when set, is {user, secret[,
// mutualSecret]}. It returns the final login status.
func (in *initiator) login(target string, chap []string, digest string) uint16 {
	in.t.Helper()
	base := []kv{{"InitiatorName", "iqn.2026-01.test:initiator"}, {"SessionType", "Normal"}}
	if target == "" {
		base[1].value = "Discovery"
	} else {
		base = append(base, kv{"TargetName", target})
	}
	if chap != nil {
		p, m := in.loginPDU(false, stageSecurity, stageSecurity, append(base, kv{"AuthMethod", "CHAP,None"}))
		if st := loginStatus(p); st != 0 {
			return st
		}
		if m["AuthMethod"] != "CHAP" {
			in.t.Fatalf("AuthMethod answer %q", m["AuthMethod"])
		}
		p, m = in.loginPDU(false, stageSecurity, stageSecurity, []kv{{"CHAP_A", "7,5"}})
		if st := loginStatus(p); st != 0 {
			return st
		}
		id, _ := strconv.Atoi(m["CHAP_I"])
		challenge, err := decodeBinary(m["CHAP_C"])
		if err != nil {
			in.t.Fatal(err)
		}
		resp := md5.Sum(append(append([]byte{byte(id)}, chap[1]...), challenge...))
		keys := []kv{{"CHAP_N", chap[0]}, {"CHAP_R", encodeHex(resp[:])}}
		myChallenge := []byte("0123456789abcdef")
		if len(chap) > 2 {
			keys = append(keys, kv{"CHAP_I", "7"}, kv{"CHAP_C", encodeHex(myChallenge)})
		}
		p, m = in.loginPDU(true, stageSecurity, stageOperational, keys)
		if st := loginStatus(p); st != 0 {
			return st
		}
		if len(chap) > 2 {
			got, err := decodeBinary(m["CHAP_R"])
			want := md5.Sum(append(append([]byte{7}, chap[2]...), myChallenge...))
			if err != nil || string(got) != string(want[:]) {
				in.t.Fatalf("target's mutual CHAP response %q is wrong", m["CHAP_R"])
			}
		}
		base = nil
	}
	if digest == "" {
		digest = "None"
	}
	ops := append(base, kv{"HeaderDigest", digest}, kv{"DataDigest", digest},
		kv{"ImmediateData", "Yes"}, kv{"InitialR2T", "No"}, kv{"MaxRecvDataSegmentLength", "65536"},
		kv{"MaxBurstLength", "262144"}, kv{"FirstBurstLength", "65536"}, kv{"ErrorRecoveryLevel", "0"})
	csg := stageOperational
	p, m := in.loginPDU(true, csg, stageFullFeature, ops)
	if st := loginStatus(p); st != 0 {
		return st
	}
	if p.flags()&0x80 == 0 || p.flags()&3 != stageFullFeature {
		in.t.Fatalf("login did not reach full feature phase: flags %#x", p.flags())
	}
	in.tsih = binary.BigEndian.Uint16(p.bhs[14:])
	in.hd, in.dd = m["HeaderDigest"] == "CRC32C", m["DataDigest"] == "CRC32C"
	in.pr.headerDigest, in.pr.dataDigest = in.hd, in.dd
	if v, err := strconv.Atoi(m["MaxRecvDataSegmentLength"]); err == nil {
		in.maxSend = v
	}
	if v, err := strconv.Atoi(m["FirstBurstLength"]); err == nil {
		in.firstB = v
	}
	return 0
}

// result is a finished SCSI command.
type result struct {
	status   byte
	sense    []byte
	data     []byte
	resFlags byte
	residual uint32
}

// command runs one SCSI command to completion, answering R2Ts.
func (in *initiator) command(lun uint64, cdb []byte, dataOut []byte, edtl int, read bool) (*result, error) {
	in.itt++
	var b [bhsLen]byte
	b[0] = opSCSICmd
	b[1] = 0x80
	if read {
		b[1] |= 0x40
	}
	if dataOut != nil {
		b[1] |= 0x20
	}
	binary.BigEndian.PutUint64(b[8:], lun<<48)
	binary.BigEndian.PutUint32(b[16:], in.itt)
	binary.BigEndian.PutUint32(b[20:], uint32(edtl))
	binary.BigEndian.PutUint32(b[24:], in.cmdSN)
	binary.BigEndian.PutUint32(b[28:], in.expStatSN)
	in.cmdSN++
	copy(b[32:], cdb)
	imm := dataOut[:min(len(dataOut), in.firstB, in.maxSend)]
	if err := in.send(b, imm); err != nil {
		return nil, err
	}
	res := &result{}
	for {
		p, err := in.recv()
		if err != nil {
			return nil, err
		}
		switch p.opcode() {
		case opR2T:
			off, n := int(p.u32(40)), int(p.u32(44))
			if off+n > len(dataOut) {
				return nil, fmt.Errorf("R2T for %d+%d beyond %d bytes", off, n, len(dataOut))
			}
			for sent, sn := 0, uint32(0); sent < n; sn++ {
				k := min(in.maxSend, n-sent)
				var d [bhsLen]byte
				d[0] = opDataOut
				if sent+k == n {
					d[1] = 0x80
				}
				copy(d[8:16], p.bhs[8:16])
				binary.BigEndian.PutUint32(d[16:], in.itt)
				copy(d[20:24], p.bhs[20:24])
				binary.BigEndian.PutUint32(d[28:], in.expStatSN)
				binary.BigEndian.PutUint32(d[36:], sn)
				binary.BigEndian.PutUint32(d[40:], uint32(off+sent))
				if err := in.send(d, dataOut[off+sent:off+sent+k]); err != nil {
					return nil, err
				}
				sent += k
			}
		case opDataIn:
			if int(p.u32(40)) != len(res.data) {
				return nil, fmt.Errorf("Data-In at offset %d, have %d", p.u32(40), len(res.data))
			}
			res.data = append(res.data, p.data...)
			if p.flags()&0x01 != 0 {
				res.status = p.bhs[3]
				res.resFlags = p.flags() & 0x06
				res.residual = p.u32(44)
				in.expStatSN = p.u32(24) + 1
				return res, nil
			}
		case opSCSIResp:
			res.status = p.bhs[3]
			res.resFlags = p.flags() & 0x06
			res.residual = p.u32(44)
			in.expStatSN = p.u32(24) + 1
			if len(p.data) >= 2 {
				n := int(binary.BigEndian.Uint16(p.data))
				if 2+n <= len(p.data) {
					res.sense = p.data[2 : 2+n]
				}
			}
			return res, nil
		default:
			return nil, fmt.Errorf("unexpected opcode %#x", p.opcode())
		}
	}
}

// logout ends the session cleanly.
func (in *initiator) logout() error {
	var b [bhsLen]byte
	b[0] = opLogoutReq | flagImmediate
	b[1] = 0x80
	in.itt++
	binary.BigEndian.PutUint32(b[16:], in.itt)
	binary.BigEndian.PutUint32(b[24:], in.cmdSN)
	binary.BigEndian.PutUint32(b[28:], in.expStatSN)
	if err := in.send(b, nil); err != nil {
		return err
	}
	p, err := in.recv()
	if err != nil {
		return err
	}
	if p.opcode() != opLogoutResp || p.bhs[2] != 0 {
		return fmt.Errorf("logout answered with opcode %#x response %d", p.opcode(), p.bhs[2])
	}
	return nil
}
