package nbdwire

// Request header sizes.
const (
	CompactRequestSize  = 28
	ExtendedRequestSize = 32
)

// RequestSize returns the request header size for the negotiated style.
func RequestSize(extended bool) int {
	if extended {
		return ExtendedRequestSize
	}
	return CompactRequestSize
}

// Request is a transmission request header. Length is the payload length
// when the request carries one (WRITE; anything with CmdFlagPayloadLen in
// extended mode), else the effect length.
type Request struct {
	Flags  uint16
	Type   uint16
	Cookie uint64
	Offset uint64
	Length uint64
}

// HasPayload reports whether Length bytes of payload follow the header.
func (r Request) HasPayload(extended bool) bool {
	if extended {
		return r.Flags&CmdFlagPayloadLen != 0
	}
	return r.Type == CmdWrite
}

// DecodeRequest decodes a request header of exactly RequestSize(extended)
// bytes. A wrong magic (including the magic of the other header style) is
// an ErrMalformed error; the caller should disconnect.
func DecodeRequest(p []byte, extended bool) (Request, error) {
	if len(p) != RequestSize(extended) {
		return Request{}, malformed("request header is %d bytes", len(p))
	}
	m := be.Uint32(p)
	want := RequestMagic
	if extended {
		want = ExtRequestMagic
	}
	if m != want {
		return Request{}, malformed("bad request magic %#x", m)
	}
	r := Request{
		Flags:  be.Uint16(p[4:]),
		Type:   be.Uint16(p[6:]),
		Cookie: be.Uint64(p[8:]),
		Offset: be.Uint64(p[16:]),
	}
	if extended {
		r.Length = be.Uint64(p[24:])
	} else {
		r.Length = uint64(be.Uint32(p[24:]))
	}
	return r, nil
}

// AppendRequest appends a request header. In compact mode Length must fit
// in 32 bits; the caller splits larger requests.
func AppendRequest(b []byte, r Request, extended bool) []byte {
	if extended {
		b = be.AppendUint32(b, ExtRequestMagic)
	} else {
		b = be.AppendUint32(b, RequestMagic)
	}
	b = be.AppendUint16(b, r.Flags)
	b = be.AppendUint16(b, r.Type)
	b = be.AppendUint64(b, r.Cookie)
	b = be.AppendUint64(b, r.Offset)
	if extended {
		return be.AppendUint64(b, r.Length)
	}
	return be.AppendUint32(b, uint32(r.Length))
}
