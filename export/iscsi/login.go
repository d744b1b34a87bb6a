package iscsi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Login stages.
const (
	stageSecurity    = 0
	stageOperational = 1
	stageFullFeature = 3
)

// Login status classes and details (RFC 7143 11.13.5), as one 16-bit value.
const (
	loginSuccess          = 0x0000
	loginInitiatorError   = 0x0200
	loginAuthFailed       = 0x0201
	loginNotFound         = 0x0203
	loginUnsupportedVer   = 0x0205
	loginMissingParam     = 0x0207
	loginSessionNotExist  = 0x020A
	loginInvalidDuringLog = 0x020B
	loginTargetError      = 0x0300
	loginOutOfResources   = 0x0302
)

// loginError ends a login with a status.
type loginError struct {
	status uint16
	msg    string
}

func (e *loginError) Error() string { return fmt.Sprintf("login failed (0x%04x): %s", e.status, e.msg) }

func loginFail(status uint16, format string, args ...any) error {
	return &loginError{status: status, msg: fmt.Sprintf(format, args...)}
}

// login runs the login phase on s. On success the session is in full
// feature phase with its parameters, target and sequence numbers set.
func (s *session) login() error {
	var (
		p           pdu
		buf         []byte
		first       = true
		stage       = -1
		pending     []byte // data of PDUs with the C bit, not yet complete
		itt         uint32
		authDone    bool
		authMethod  string // "", "None" or "CHAP"
		chap        *chapState
		creds       *CHAP
		sentTPGT    bool
		initiatorOK bool
	)
	s.pr.maxData = loginMaxData
	for {
		if err := s.pr.read(&p, buf); err != nil {
			return err
		}
		buf = p.data[:cap(p.data)]
		if p.opcode() != opLoginReq {
			return s.loginReject(itt, loginInvalidDuringLog, "%s before login completed", opName(p.opcode()))
		}
		flags := p.flags()
		transit, cont := flags&0x80 != 0, flags&0x40 != 0
		csg, nsg := int(flags>>2)&3, int(flags&3)
		itt = p.itt()
		if transit && cont {
			return s.loginReject(itt, loginInitiatorError, "login PDU with both T and C bits")
		}
		if first {
			if p.bhs[3] > 0 { // Version-min
				return s.loginReject(itt, loginUnsupportedVer, "version-min %d", p.bhs[3])
			}
			copy(s.isid[:], p.bhs[8:14])
			if binary.BigEndian.Uint16(p.bhs[14:]) != 0 {
				return s.loginReject(itt, loginSessionNotExist, "session reinstatement or new connection (TSIH %d) is not supported", binary.BigEndian.Uint16(p.bhs[14:]))
			}
			s.cid = binary.BigEndian.Uint16(p.bhs[20:])
			s.expCmdSN = p.u32(24)
			s.statSN = p.u32(28)
			stage = csg
			if csg != stageSecurity && csg != stageOperational {
				return s.loginReject(itt, loginInitiatorError, "login starts in stage %d", csg)
			}
		} else if csg != stage {
			return s.loginReject(itt, loginInitiatorError, "login stage %d, expected %d", csg, stage)
		}
		if transit && (nsg == 2 || nsg <= csg) {
			return s.loginReject(itt, loginInitiatorError, "bad next stage %d from %d", nsg, csg)
		}
		pending = append(pending, p.data...)
		if len(pending) > 4*loginMaxData {
			return s.loginReject(itt, loginInitiatorError, "login text too long")
		}
		if cont {
			// More text follows: acknowledge with an empty response.
			if err := s.sendLogin(itt, false, csg, nsg, loginSuccess, nil); err != nil {
				return err
			}
			continue
		}
		pairs, err := parseText(pending)
		pending = pending[:0]
		if err != nil {
			return s.loginReject(itt, loginInitiatorError, "%v", err)
		}
		var reply []kv
		var chapName, chapResp, chapI, chapC string
		// Declarations first: AuthMethod depends on the target.
		for _, pair := range pairs {
			switch pair.key {
			case "InitiatorName":
				s.initiatorName = pair.value
				initiatorOK = pair.value != ""
			case "SessionType":
				switch pair.value {
				case "Discovery":
					s.discovery = true
				case "Normal":
					s.discovery = false
				default:
					return s.loginReject(itt, loginInitiatorError, "session type %q", pair.value)
				}
			case "TargetName":
				t := s.srv.target(pair.value)
				if t == nil {
					return s.loginReject(itt, loginNotFound, "no target %q", pair.value)
				}
				s.target = t
			}
		}
		for _, pair := range pairs {
			switch pair.key {
			case "InitiatorName", "InitiatorAlias", "SessionType", "TargetName":
			case "AuthMethod":
				creds = s.srv.credsFor(s.target)
				authMethod = ""
				for _, m := range splitList(pair.value) {
					if creds != nil && m == "CHAP" || creds == nil && m == "None" {
						authMethod = m
						break
					}
				}
				if authMethod == "" {
					return s.loginReject(itt, loginAuthFailed, "initiator offers AuthMethod=%s", pair.value)
				}
				reply = append(reply, kv{"AuthMethod", authMethod})
			case "CHAP_A":
				if authMethod != "CHAP" || chap != nil {
					return s.loginReject(itt, loginInitiatorError, "unexpected CHAP_A")
				}
				chap = &chapState{creds: creds}
				keys, err := chap.start(pair.value)
				if err != nil {
					return s.loginReject(itt, loginAuthFailed, "%v", err)
				}
				reply = append(reply, keys...)
			case "CHAP_N":
				chapName = pair.value
			case "CHAP_R":
				chapResp = pair.value
			case "CHAP_I":
				chapI = pair.value
			case "CHAP_C":
				chapC = pair.value
			default:
				if csg == stageSecurity && !isOperationalKey(pair.key) {
					reply = append(reply, kv{pair.key, "NotUnderstood"})
					continue
				}
				v, err := s.params.negotiate(pair.key, pair.value)
				if err != nil {
					return s.loginReject(itt, loginInitiatorError, "%v", err)
				}
				if v != "" {
					reply = append(reply, kv{pair.key, v})
				}
				if pair.key == "MaxRecvDataSegmentLength" && !s.declaredMRDSL {
					reply = append(reply, kv{"MaxRecvDataSegmentLength", strconv.Itoa(ourMaxRecvData)})
					s.declaredMRDSL = true
				}
			}
		}
		if first {
			if !initiatorOK {
				return s.loginReject(itt, loginMissingParam, "no InitiatorName")
			}
			if !s.discovery && s.target == nil {
				return s.loginReject(itt, loginMissingParam, "no TargetName in a normal session")
			}
			if creds == nil {
				creds = s.srv.credsFor(s.target)
			}
			first = false
		}
		if chapResp != "" || chapName != "" {
			if chap == nil {
				return s.loginReject(itt, loginInitiatorError, "CHAP response without CHAP_A")
			}
			keys, err := chap.finish(chapName, chapResp, chapI, chapC)
			if err != nil {
				return s.loginReject(itt, loginAuthFailed, "%v", err)
			}
			reply = append(reply, keys...)
			authDone = true
		}
		if authMethod == "None" {
			authDone = true
		}
		if !s.discovery && !sentTPGT {
			reply = append(reply, kv{"TargetPortalGroupTag", "1"})
			sentTPGT = true
		}
		if csg == stageOperational && !s.declaredMRDSL {
			reply = append(reply, kv{"MaxRecvDataSegmentLength", strconv.Itoa(ourMaxRecvData)})
			s.declaredMRDSL = true
		}
		// Leaving the security stage needs authentication when CHAP is
		// configured; a login that starts in the operational stage skips
		// it and is refused then.
		if creds != nil && !authDone && (csg == stageOperational || transit) {
			if csg == stageOperational || authMethod != "CHAP" || chap == nil {
				return s.loginReject(itt, loginAuthFailed, "CHAP required")
			}
			transit = false
		}
		if csg == stageSecurity && authMethod == "" && creds == nil {
			authDone = true
		}
		if transit {
			stage = nsg
		}
		if transit && nsg == stageFullFeature {
			s.tsih = s.srv.newTSIH()
			if err := s.sendLogin(itt, true, csg, nsg, loginSuccess, reply); err != nil {
				return err
			}
			s.pr.headerDigest, s.pr.dataDigest = s.params.headerDigest, s.params.dataDigest
			if s.declaredMRDSL {
				s.pr.maxData = ourMaxRecvData
			} else {
				s.pr.maxData = defaultSendData
			}
			return nil
		}
		if err := s.sendLogin(itt, transit, csg, nsg, loginSuccess, reply); err != nil {
			return err
		}
	}
}

// isOperationalKey reports whether key is negotiated in the operational
// stage (and may appear early in the security stage).
func isOperationalKey(key string) bool {
	switch key {
	case "HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength", "MaxBurstLength",
		"FirstBurstLength", "ImmediateData", "InitialR2T", "MaxOutstandingR2T",
		"ErrorRecoveryLevel", "MaxConnections", "DataPDUInOrder", "DataSequenceInOrder",
		"IFMarker", "OFMarker", "OFMarkInt", "IFMarkInt", "DefaultTime2Wait", "DefaultTime2Retain":
		return true
	}
	return false
}

func splitList(v string) []string {
	var out []string
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		out = append(out, v[:i])
		if i < len(v) {
			i++
		}
		v = v[i:]
	}
	return out
}

// sendLogin writes one login response directly (the writer goroutine does
// not run yet).
func (s *session) sendLogin(itt uint32, transit bool, csg, nsg int, status uint16, keys []kv) error {
	var o outPDU
	o.bhs[0] = opLoginResp
	if transit {
		o.bhs[1] = 0x80 | byte(csg)<<2 | byte(nsg)
	} else {
		o.bhs[1] = byte(csg) << 2
	}
	copy(o.bhs[8:14], s.isid[:])
	binary.BigEndian.PutUint16(o.bhs[14:], s.tsih)
	o.put32(16, itt)
	o.put32(24, s.statSN)
	s.statSN++
	o.put32(28, s.expCmdSN)
	o.put32(32, s.expCmdSN+cmdWindow-1)
	o.bhs[36], o.bhs[37] = byte(status>>8), byte(status)
	o.data = encodeText(nil, keys)
	if err := writePDU(s.bw, &o, false, false); err != nil {
		return err
	}
	return s.bw.Flush()
}

// loginReject sends a failing login response and returns the error that
// ends the connection.
func (s *session) loginReject(itt uint32, status uint16, format string, args ...any) error {
	err := loginFail(status, format, args...)
	s.sendLogin(itt, false, 0, 0, status, nil)
	return err
}

func opName(op byte) string {
	switch op {
	case opNopOut:
		return "NOP-Out"
	case opSCSICmd:
		return "SCSI command"
	case opTMFReq:
		return "task management request"
	case opTextReq:
		return "text request"
	case opDataOut:
		return "Data-Out"
	case opLogoutReq:
		return "logout request"
	case opSNACK:
		return "SNACK"
	}
	return fmt.Sprintf("opcode 0x%02x", op)
}

var errLogout = errors.New("iscsi: logged out")
