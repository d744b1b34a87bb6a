package nbdwire

import "encoding/binary"

var be = binary.BigEndian

// ServerHelloSize is the length of the server's greeting: NBDMAGIC,
// IHAVEOPT and the 16-bit handshake flags.
const ServerHelloSize = 18

// AppendServerHello appends the fixed newstyle greeting.
func AppendServerHello(b []byte, flags uint16) []byte {
	b = be.AppendUint64(b, NBDMagic)
	b = be.AppendUint64(b, IHaveOpt)
	return be.AppendUint16(b, flags)
}

// DecodeServerHello checks the greeting's magics and returns the handshake
// flags. An oldstyle server (cliserv magic) is refused.
func DecodeServerHello(p []byte) (uint16, error) {
	if len(p) != ServerHelloSize {
		return 0, malformed("greeting is %d bytes", len(p))
	}
	if be.Uint64(p) != NBDMagic {
		return 0, malformed("bad NBDMAGIC %#x", be.Uint64(p))
	}
	if be.Uint64(p[8:]) != IHaveOpt {
		return 0, malformed("not a newstyle server (magic %#x)", be.Uint64(p[8:]))
	}
	return be.Uint16(p[16:]), nil
}

// OptionHeaderSize is the length of an option header: IHAVEOPT, the option
// and the data length.
const OptionHeaderSize = 16

// OptionHeader is a client option header; Length bytes of data follow.
type OptionHeader struct {
	Option uint32
	Length uint32
}

// DecodeOptionHeader checks the magic of a 16-byte option header.
func DecodeOptionHeader(p []byte) (OptionHeader, error) {
	if len(p) != OptionHeaderSize {
		return OptionHeader{}, malformed("option header is %d bytes", len(p))
	}
	if m := be.Uint64(p); m != IHaveOpt {
		return OptionHeader{}, malformed("bad option magic %#x", m)
	}
	return OptionHeader{Option: be.Uint32(p[8:]), Length: be.Uint32(p[12:])}, nil
}

// AppendOption appends an option header and its data.
func AppendOption(b []byte, option uint32, data []byte) []byte {
	b = be.AppendUint64(b, IHaveOpt)
	b = be.AppendUint32(b, option)
	b = be.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

// OptionReplyHeaderSize is the length of an option reply header.
const OptionReplyHeaderSize = 20

// OptionReplyHeader is a server's reply header to an option; Length bytes
// of data follow.
type OptionReplyHeader struct {
	Option uint32
	Type   uint32
	Length uint32
}

// AppendOptionReply appends an option reply header and its data.
func AppendOptionReply(b []byte, option, typ uint32, data []byte) []byte {
	b = be.AppendUint64(b, OptionReplyMagic)
	b = be.AppendUint32(b, option)
	b = be.AppendUint32(b, typ)
	b = be.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

// DecodeOptionReplyHeader checks the magic of a 20-byte option reply header.
func DecodeOptionReplyHeader(p []byte) (OptionReplyHeader, error) {
	if len(p) != OptionReplyHeaderSize {
		return OptionReplyHeader{}, malformed("option reply header is %d bytes", len(p))
	}
	if m := be.Uint64(p); m != OptionReplyMagic {
		return OptionReplyHeader{}, malformed("bad option reply magic %#x", m)
	}
	return OptionReplyHeader{Option: be.Uint32(p[8:]), Type: be.Uint32(p[12:]), Length: be.Uint32(p[16:])}, nil
}

// ExportNameReplySize returns the length of the reply to
// NBD_OPT_EXPORT_NAME: size, transmission flags, and 124 zero bytes unless
// NO_ZEROES was agreed.
func ExportNameReplySize(noZeroes bool) int {
	if noZeroes {
		return 10
	}
	return 134
}

// AppendExportNameReply appends the reply to NBD_OPT_EXPORT_NAME.
func AppendExportNameReply(b []byte, size uint64, flags uint16, noZeroes bool) []byte {
	b = be.AppendUint64(b, size)
	b = be.AppendUint16(b, flags)
	if !noZeroes {
		b = append(b, make([]byte, 124)...)
	}
	return b
}

// DecodeExportNameReply decodes the size and transmission flags.
func DecodeExportNameReply(p []byte) (size uint64, flags uint16, err error) {
	if len(p) < 10 {
		return 0, 0, malformed("export name reply is %d bytes", len(p))
	}
	return be.Uint64(p), be.Uint16(p[8:]), nil
}
