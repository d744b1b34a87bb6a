package iscsi

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// CHAP holds the credentials of CHAP authentication (RFC 1994 with MD5, as
// RFC 7143 12.1.3 uses it). User and Secret authenticate the initiator to
// the target (one-way CHAP); MutualUser and MutualSecret, when set, also
// authenticate the target to the initiator (mutual CHAP), and an initiator
// that does not challenge the target is refused.
type CHAP struct {
	User, Secret             string
	MutualUser, MutualSecret string
}

// mutual reports whether the target must answer a challenge.
func (c *CHAP) mutual() bool { return c.MutualUser != "" || c.MutualSecret != "" }

// chapMD5 is CHAP_A=5.
const chapMD5 = "5"

// chapChallengeLen is the length of our challenge in bytes.
const chapChallengeLen = 16

// chapResponse computes MD5(id || secret || challenge).
func chapResponse(id byte, secret string, challenge []byte) []byte {
	h := md5.New()
	h.Write([]byte{id})
	h.Write([]byte(secret))
	h.Write(challenge)
	return h.Sum(nil)
}

// decodeBinary reads a CHAP binary value: 0x-hex or 0b-base64.
func decodeBinary(v string) ([]byte, error) {
	if len(v) < 3 {
		return nil, errors.New("iscsi: CHAP value too short")
	}
	switch strings.ToLower(v[:2]) {
	case "0x":
		s := v[2:]
		if len(s)%2 == 1 {
			s = "0" + s
		}
		return hex.DecodeString(s)
	case "0b":
		return base64.StdEncoding.DecodeString(v[2:])
	}
	return nil, errors.New("iscsi: CHAP value is not 0x or 0b encoded")
}

func encodeHex(b []byte) string { return "0x" + hex.EncodeToString(b) }

// chapState is the target side of one CHAP exchange.
type chapState struct {
	creds     *CHAP
	id        byte
	challenge []byte
}

// start answers CHAP_A: the algorithm list must contain MD5. It returns the
// keys to send (CHAP_A, CHAP_I, CHAP_C).
func (s *chapState) start(algorithms string) ([]kv, error) {
	ok := false
	for _, a := range strings.Split(algorithms, ",") {
		if a == chapMD5 {
			ok = true
		}
	}
	if !ok {
		return []kv{{"CHAP_A", "Reject"}}, errors.New("iscsi: initiator offers no CHAP algorithm we know (MD5)")
	}
	var rnd [chapChallengeLen + 1]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	s.id = rnd[0]
	s.challenge = rnd[1:]
	return []kv{{"CHAP_A", chapMD5}, {"CHAP_I", itoa(int(s.id))}, {"CHAP_C", encodeHex(s.challenge)}}, nil
}

// finish checks the initiator's CHAP_N and CHAP_R and, for mutual CHAP,
// answers its CHAP_I and CHAP_C. It returns the keys to send.
func (s *chapState) finish(name, response, mutualID, mutualChallenge string) ([]kv, error) {
	if s.challenge == nil {
		return nil, errors.New("iscsi: CHAP response before challenge")
	}
	got, err := decodeBinary(response)
	if err != nil {
		return nil, err
	}
	want := chapResponse(s.id, s.creds.Secret, s.challenge)
	nameOK := subtle.ConstantTimeCompare([]byte(name), []byte(s.creds.User)) == 1
	if subtle.ConstantTimeCompare(got, want) != 1 || !nameOK {
		return nil, errors.New("iscsi: CHAP authentication failed")
	}
	if !s.creds.mutual() {
		if mutualID != "" || mutualChallenge != "" {
			return nil, errors.New("iscsi: initiator asks for mutual CHAP, which is not configured")
		}
		return nil, nil
	}
	if mutualID == "" || mutualChallenge == "" {
		return nil, errors.New("iscsi: mutual CHAP required but the initiator sent no challenge")
	}
	idn, err := parseNumber(mutualID)
	if err != nil || idn > 255 {
		return nil, errors.New("iscsi: bad CHAP_I")
	}
	ch, err := decodeBinary(mutualChallenge)
	if err != nil || len(ch) == 0 || len(ch) > 1024 {
		return nil, errors.New("iscsi: bad CHAP_C")
	}
	if bytes.Equal(ch, s.challenge) {
		return nil, errors.New("iscsi: initiator reflected our CHAP challenge")
	}
	resp := chapResponse(byte(idn), s.creds.MutualSecret, ch)
	return []kv{{"CHAP_N", s.creds.MutualUser}, {"CHAP_R", encodeHex(resp)}}, nil
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [12]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
