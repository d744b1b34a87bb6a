package iscsi

import (
	"errors"
	"strconv"
	"strings"
)

// maxKeys bounds the keys of one negotiation exchange.
const maxKeys = 256

// kv is one key=value pair of a text or login exchange, in order.
type kv struct{ key, value string }

// parseText splits a data segment of NUL-terminated key=value pairs. A
// trailing pair without its NUL is accepted; an empty pair is skipped. It
// fails on a pair without '=' or on more than maxKeys pairs.
func parseText(data []byte) ([]kv, error) {
	var out []kv
	for len(data) > 0 {
		end := 0
		for end < len(data) && data[end] != 0 {
			end++
		}
		pair := string(data[:end])
		if end < len(data) {
			end++
		}
		data = data[end:]
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k == "" {
			return nil, errors.New("iscsi: text pair without '='")
		}
		if len(out) == maxKeys {
			return nil, errors.New("iscsi: too many text keys")
		}
		out = append(out, kv{k, v})
	}
	return out, nil
}

// encodeText appends the pairs as NUL-terminated key=value strings.
func encodeText(dst []byte, pairs []kv) []byte {
	for _, p := range pairs {
		dst = append(dst, p.key...)
		dst = append(dst, '=')
		dst = append(dst, p.value...)
		dst = append(dst, 0)
	}
	return dst
}

// parseNumber reads a decimal or 0x-hexadecimal number value.
func parseNumber(v string) (uint64, error) {
	if len(v) > 2 && (v[:2] == "0x" || v[:2] == "0X") {
		return strconv.ParseUint(v[2:], 16, 64)
	}
	return strconv.ParseUint(v, 10, 64)
}

// parseBool reads "Yes" or "No".
func parseBool(v string) (bool, error) {
	switch v {
	case "Yes":
		return true, nil
	case "No":
		return false, nil
	}
	return false, errors.New("iscsi: not Yes or No: " + v)
}

func boolText(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

// params are the negotiated operational parameters of a session.
type params struct {
	headerDigest, dataDigest bool
	// maxSendData is the initiator's MaxRecvDataSegmentLength: the largest
	// data segment we may send it.
	maxSendData      int
	maxBurst         int
	firstBurst       int
	immediateData    bool
	initialR2T       bool
	maxOutstandingR2 int
}

// Our limits and preferences.
const (
	ourMaxRecvData   = 256 << 10 // MaxRecvDataSegmentLength we declare
	ourMaxBurst      = 16 << 20
	ourFirstBurst    = 256 << 10
	loginMaxData     = 64 << 10 // data segment bound before negotiation ends
	defaultSendData  = 8192     // RFC default MaxRecvDataSegmentLength
	defaultMaxBurst  = 262144
	defaultFirstBurs = 65536
)

func defaultParams() params {
	return params{
		maxSendData:      defaultSendData,
		maxBurst:         defaultMaxBurst,
		firstBurst:       defaultFirstBurs,
		immediateData:    true,
		initialR2T:       true,
		maxOutstandingR2: 1,
	}
}

// negotiate answers one operational key and records the result in p. It
// returns the reply value, or "" when the key needs no reply (declarative
// keys the initiator sends), and an error for a value that breaks the
// protocol. Unknown keys are answered NotUnderstood.
func (p *params) negotiate(key, value string) (reply string, err error) {
	num := func(lo, hi uint64) (uint64, error) {
		n, err := parseNumber(value)
		if err != nil || n < lo || n > hi {
			return 0, errors.New("iscsi: bad value for " + key + ": " + value)
		}
		return n, nil
	}
	switch key {
	case "HeaderDigest", "DataDigest":
		choice := ""
		for _, v := range strings.Split(value, ",") {
			if v == "None" || v == "CRC32C" {
				choice = v
				break
			}
		}
		if choice == "" {
			return "Reject", nil
		}
		if key == "HeaderDigest" {
			p.headerDigest = choice == "CRC32C"
		} else {
			p.dataDigest = choice == "CRC32C"
		}
		return choice, nil
	case "MaxRecvDataSegmentLength":
		n, err := num(512, 1<<24-1)
		if err != nil {
			return "", err
		}
		p.maxSendData = int(n)
		return "", nil
	case "MaxBurstLength":
		n, err := num(512, 1<<24-1)
		if err != nil {
			return "", err
		}
		p.maxBurst = int(min(n, ourMaxBurst))
		p.firstBurst = min(p.firstBurst, p.maxBurst)
		return strconv.Itoa(p.maxBurst), nil
	case "FirstBurstLength":
		n, err := num(512, 1<<24-1)
		if err != nil {
			return "", err
		}
		p.firstBurst = int(min(n, ourFirstBurst, uint64(p.maxBurst)))
		return strconv.Itoa(p.firstBurst), nil
	case "ImmediateData":
		b, err := parseBool(value)
		if err != nil {
			return "", err
		}
		p.immediateData = b // AND with our Yes
		return boolText(b), nil
	case "InitialR2T":
		b, err := parseBool(value)
		if err != nil {
			return "", err
		}
		// OR with our Yes: data beyond the immediate data is always
		// solicited, so the target paces every write and a task can be
		// aborted while it waits for its data.
		_ = b
		p.initialR2T = true
		return "Yes", nil
	case "MaxOutstandingR2T":
		if _, err := num(1, 65535); err != nil {
			return "", err
		}
		p.maxOutstandingR2 = 1
		return "1", nil
	case "ErrorRecoveryLevel":
		if _, err := num(0, 2); err != nil {
			return "", err
		}
		return "0", nil
	case "MaxConnections":
		if _, err := num(1, 65535); err != nil {
			return "", err
		}
		return "1", nil
	case "DataPDUInOrder", "DataSequenceInOrder":
		if _, err := parseBool(value); err != nil {
			return "", err
		}
		return "Yes", nil // OR with our Yes
	case "IFMarker", "OFMarker":
		return "No", nil // AND with our No
	case "OFMarkInt", "IFMarkInt":
		return "Irrelevant", nil
	case "DefaultTime2Wait":
		n, err := num(0, 3600)
		if err != nil {
			return "", err
		}
		return strconv.FormatUint(n, 10), nil // max(ours=0, theirs)
	case "DefaultTime2Retain":
		if _, err := num(0, 3600); err != nil {
			return "", err
		}
		return "0", nil // min(ours=0, theirs): no retention at ERL 0
	}
	return "NotUnderstood", nil
}
