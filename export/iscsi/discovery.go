package iscsi

import (
	"net"
	"strconv"
)

// textState is a text response being sent in parts (C bit), waiting for
// the initiator's empty continuation requests.
type textState struct {
	ttt  uint32
	rest []byte
}

// textRequest serves Text requests: SendTargets in discovery and normal
// sessions, continuation of long responses, and NotUnderstood for other
// keys.
func (s *session) textRequest(p *pdu) error {
	if !s.checkCmdSN(p) {
		return nil
	}
	if p.flags()&0x40 != 0 {
		s.reject(p, rejectNotSupported) // multi-PDU text requests
		return nil
	}
	ttt := p.u32(20)
	var body []byte
	switch {
	case ttt != reservedTag && ttt == s.text.ttt && s.text.rest != nil:
		body = s.text.rest
	default:
		pairs, err := parseText(p.data)
		if err != nil {
			s.reject(p, rejectProtocolError)
			return nil
		}
		var reply []kv
		for _, pair := range pairs {
			if pair.key != "SendTargets" {
				reply = append(reply, kv{pair.key, "NotUnderstood"})
				continue
			}
			reply = append(reply, s.sendTargets(pair.value)...)
		}
		body = encodeText(nil, reply)
	}
	s.text = textState{}
	o := &outPDU{seq: seqStatus}
	o.bhs[0] = opTextResp
	o.put32(16, p.itt())
	if max := s.params.maxSendData; len(body) > max {
		s.cmu.Lock()
		s.nextTTT++
		if s.nextTTT == reservedTag {
			s.nextTTT = 1
		}
		ttt := s.nextTTT
		s.cmu.Unlock()
		s.text = textState{ttt: ttt, rest: body[max:]}
		body = body[:max]
		o.bhs[1] = 0x40 // C
		o.put32(20, s.text.ttt)
	} else {
		o.bhs[1] = 0x80 // F
		o.put32(20, reservedTag)
	}
	o.data = body
	s.enqueue(o)
	return nil
}

// sendTargets lists targets and their addresses: "All" lists every target
// (discovery sessions), an empty value the session's own target, a name
// that target.
func (s *session) sendTargets(which string) []kv {
	addr := s.nc.LocalAddr().String()
	if tcp, ok := s.nc.LocalAddr().(*net.TCPAddr); ok {
		addr = net.JoinHostPort(tcp.IP.String(), strconv.Itoa(tcp.Port))
	}
	var out []kv
	for _, t := range s.srv.targetList() {
		switch {
		case which == "All" && s.discovery:
		case which == "" && s.target == t:
		case which == t.Name:
		default:
			continue
		}
		out = append(out, kv{"TargetName", t.Name}, kv{"TargetAddress", addr + ",1"})
	}
	return out
}
