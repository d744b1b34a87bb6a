package nbdwire

// Reply header sizes, magic included.
const (
	SimpleReplySize     = 16
	StructuredReplySize = 20
	ExtendedReplySize   = 32
)

// ReplySize returns the header size for a reply magic, or 0 for an unknown
// magic.
func ReplySize(magic uint32) int {
	switch magic {
	case SimpleReplyMagic:
		return SimpleReplySize
	case StructReplyMagic:
		return StructuredReplySize
	case ExtReplyMagic:
		return ExtendedReplySize
	}
	return 0
}

// ReplyHeader is a decoded reply header of any style. For a simple reply,
// Error is set and Flags has ReplyFlagDone; for chunks, Type, Flags and
// Length (the payload length) are set, and Offset for extended replies.
type ReplyHeader struct {
	Magic  uint32
	Flags  uint16
	Type   uint16
	Error  uint32
	Cookie uint64
	Offset uint64
	Length uint64
}

// Simple reports whether this is a simple reply.
func (h ReplyHeader) Simple() bool { return h.Magic == SimpleReplyMagic }

// Done reports whether this is the final message of its request's reply.
func (h ReplyHeader) Done() bool { return h.Flags&ReplyFlagDone != 0 }

// DecodeReplyHeader decodes a reply header (magic included) whose length
// must be ReplySize of its magic.
func DecodeReplyHeader(p []byte) (ReplyHeader, error) {
	if len(p) < 4 {
		return ReplyHeader{}, malformed("reply header is %d bytes", len(p))
	}
	m := be.Uint32(p)
	n := ReplySize(m)
	if n == 0 {
		return ReplyHeader{}, malformed("bad reply magic %#x", m)
	}
	if len(p) != n {
		return ReplyHeader{}, malformed("reply header is %d bytes, want %d", len(p), n)
	}
	h := ReplyHeader{Magic: m}
	switch m {
	case SimpleReplyMagic:
		h.Error = be.Uint32(p[4:])
		h.Cookie = be.Uint64(p[8:])
		h.Flags = ReplyFlagDone
	case StructReplyMagic:
		h.Flags, h.Type = be.Uint16(p[4:]), be.Uint16(p[6:])
		h.Cookie = be.Uint64(p[8:])
		h.Length = uint64(be.Uint32(p[16:]))
	case ExtReplyMagic:
		h.Flags, h.Type = be.Uint16(p[4:]), be.Uint16(p[6:])
		h.Cookie = be.Uint64(p[8:])
		h.Offset = be.Uint64(p[16:])
		h.Length = be.Uint64(p[24:])
	}
	return h, nil
}

// AppendSimpleReply appends a simple reply header; for a successful READ
// the data follows.
func AppendSimpleReply(b []byte, errno uint32, cookie uint64) []byte {
	b = be.AppendUint32(b, SimpleReplyMagic)
	b = be.AppendUint32(b, errno)
	return be.AppendUint64(b, cookie)
}

// AppendChunkHeader appends a structured (extended=false) or extended
// reply chunk header. reqOffset is the request's offset (extended only);
// length is the payload length that follows.
func AppendChunkHeader(b []byte, extended bool, flags, typ uint16, cookie, reqOffset, length uint64) []byte {
	if extended {
		b = be.AppendUint32(b, ExtReplyMagic)
	} else {
		b = be.AppendUint32(b, StructReplyMagic)
	}
	b = be.AppendUint16(b, flags)
	b = be.AppendUint16(b, typ)
	b = be.AppendUint64(b, cookie)
	if extended {
		b = be.AppendUint64(b, reqOffset)
		return be.AppendUint64(b, length)
	}
	return be.AppendUint32(b, uint32(length))
}

// OffsetHoleSize is the payload length of NBD_REPLY_TYPE_OFFSET_HOLE.
const OffsetHoleSize = 12

// AppendOffsetHole appends an OFFSET_HOLE payload.
func AppendOffsetHole(b []byte, off uint64, size uint32) []byte {
	b = be.AppendUint64(b, off)
	return be.AppendUint32(b, size)
}

// DecodeOffsetHole decodes an OFFSET_HOLE payload.
func DecodeOffsetHole(p []byte) (off uint64, size uint32, err error) {
	if len(p) != OffsetHoleSize {
		return 0, 0, malformed("hole chunk is %d bytes", len(p))
	}
	off, size = be.Uint64(p), be.Uint32(p[8:])
	if size == 0 {
		return 0, 0, malformed("empty hole chunk")
	}
	return off, size, nil
}

// AppendErrorChunk appends the payload of NBD_REPLY_TYPE_ERROR. The message
// is cut to MaxStringLength bytes.
func AppendErrorChunk(b []byte, errno uint32, msg string) []byte {
	if len(msg) > MaxStringLength {
		msg = msg[:MaxStringLength]
	}
	b = be.AppendUint32(b, errno)
	b = be.AppendUint16(b, uint16(len(msg)))
	return append(b, msg...)
}

// DecodeErrorChunk decodes the common prefix of every error chunk (error,
// message length, message). The message is not required to be valid UTF-8.
func DecodeErrorChunk(p []byte) (errno uint32, msg string, err error) {
	if len(p) < 6 {
		return 0, "", malformed("error chunk is %d bytes", len(p))
	}
	errno = be.Uint32(p)
	n := int(be.Uint16(p[4:]))
	if n > len(p)-6 {
		return 0, "", malformed("error message of %d bytes in a %d-byte chunk", n, len(p))
	}
	if errno == 0 {
		return 0, "", malformed("error chunk with error 0")
	}
	return errno, string(p[6 : 6+n]), nil
}

// Descriptor is one block status extent: a length and the context's flags.
type Descriptor struct {
	Length uint64
	Flags  uint64
}

// MaxDescriptors bounds the descriptors one status chunk may carry (the
// spec asks servers to stay under 2^20).
const MaxDescriptors = 1 << 20

// BlockStatusSize returns the payload length of a status chunk with n
// descriptors.
func BlockStatusSize(extended bool, n int) int {
	if extended {
		return 8 + 16*n
	}
	return 4 + 8*n
}

// AppendBlockStatus appends a BLOCK_STATUS (compact: 32-bit lengths and
// flags; the caller keeps lengths under 2^32) or BLOCK_STATUS_EXT payload.
func AppendBlockStatus(b []byte, extended bool, contextID uint32, ds []Descriptor) []byte {
	b = be.AppendUint32(b, contextID)
	if extended {
		b = be.AppendUint32(b, uint32(len(ds)))
		for _, d := range ds {
			b = be.AppendUint64(b, d.Length)
			b = be.AppendUint64(b, d.Flags)
		}
		return b
	}
	for _, d := range ds {
		b = be.AppendUint32(b, uint32(d.Length))
		b = be.AppendUint32(b, uint32(d.Flags))
	}
	return b
}

// DecodeBlockStatus decodes a BLOCK_STATUS (extended=false) or
// BLOCK_STATUS_EXT payload, checking its length, the descriptor count and
// that every length is nonzero.
func DecodeBlockStatus(p []byte, extended bool) (contextID uint32, ds []Descriptor, err error) {
	hdr, each := 4, 8
	if extended {
		hdr, each = 8, 16
	}
	if len(p) < hdr+each || (len(p)-hdr)%each != 0 {
		return 0, nil, malformed("block status payload of %d bytes", len(p))
	}
	n := (len(p) - hdr) / each
	if n > MaxDescriptors {
		return 0, nil, malformed("%d block status descriptors", n)
	}
	contextID = be.Uint32(p)
	if extended && int(be.Uint32(p[4:])) != n {
		return 0, nil, malformed("descriptor count %d, payload holds %d", be.Uint32(p[4:]), n)
	}
	ds = make([]Descriptor, n)
	q := p[hdr:]
	for i := range ds {
		if extended {
			ds[i] = Descriptor{Length: be.Uint64(q), Flags: be.Uint64(q[8:])}
		} else {
			ds[i] = Descriptor{Length: uint64(be.Uint32(q)), Flags: uint64(be.Uint32(q[4:]))}
		}
		if ds[i].Length == 0 {
			return 0, nil, malformed("block status descriptor %d has length 0", i)
		}
		q = q[each:]
	}
	return contextID, ds, nil
}
