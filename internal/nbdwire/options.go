package nbdwire

import "unicode/utf8"

// reader walks an option payload with bounds checks.
type reader struct {
	p   []byte
	err error
}

func (r *reader) u16() uint16 {
	if r.err != nil || len(r.p) < 2 {
		r.fail("truncated")
		return 0
	}
	v := be.Uint16(r.p)
	r.p = r.p[2:]
	return v
}

func (r *reader) u32() uint32 {
	if r.err != nil || len(r.p) < 4 {
		r.fail("truncated")
		return 0
	}
	v := be.Uint32(r.p)
	r.p = r.p[4:]
	return v
}

func (r *reader) u64() uint64 {
	if r.err != nil || len(r.p) < 8 {
		r.fail("truncated")
		return 0
	}
	v := be.Uint64(r.p)
	r.p = r.p[8:]
	return v
}

// str reads n bytes as a protocol string: at most MaxStringLength bytes,
// valid UTF-8, no NUL.
func (r *reader) str(n uint32) string {
	if r.err != nil {
		return ""
	}
	if n > MaxStringLength {
		r.fail("string of %d bytes is over the limit", n)
		return ""
	}
	if uint64(len(r.p)) < uint64(n) {
		r.fail("string of %d bytes overruns the payload", n)
		return ""
	}
	s := r.p[:n]
	r.p = r.p[n:]
	for _, c := range s {
		if c == 0 {
			r.fail("string contains NUL")
			return ""
		}
	}
	if !utf8.Valid(s) {
		r.fail("string is not UTF-8")
		return ""
	}
	return string(s)
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = malformed(format, args...)
	}
}

func (r *reader) end() error {
	if r.err == nil && len(r.p) != 0 {
		r.fail("%d trailing bytes", len(r.p))
	}
	return r.err
}

// CheckString validates a protocol string (export name, description,
// message): at most MaxStringLength bytes, UTF-8, no NUL.
func CheckString(s string) error {
	r := reader{p: []byte(s)}
	r.str(uint32(len(s)))
	return r.err
}

// InfoRequest is the data of NBD_OPT_INFO and NBD_OPT_GO.
type InfoRequest struct {
	Name  string
	Infos []uint16
}

// DecodeInfoRequest decodes NBD_OPT_INFO / NBD_OPT_GO data.
func DecodeInfoRequest(data []byte) (InfoRequest, error) {
	r := reader{p: data}
	name := r.str(r.u32())
	count := r.u16()
	if r.err == nil && len(r.p) != int(count)*2 {
		r.fail("%d info requests in %d bytes", count, len(r.p))
	}
	var infos []uint16
	if r.err == nil && count > 0 {
		infos = make([]uint16, count)
		for i := range infos {
			infos[i] = r.u16()
		}
	}
	if err := r.end(); err != nil {
		return InfoRequest{}, err
	}
	return InfoRequest{Name: name, Infos: infos}, nil
}

// AppendInfoRequest appends NBD_OPT_INFO / NBD_OPT_GO data.
func AppendInfoRequest(b []byte, q InfoRequest) []byte {
	b = be.AppendUint32(b, uint32(len(q.Name)))
	b = append(b, q.Name...)
	b = be.AppendUint16(b, uint16(len(q.Infos)))
	for _, t := range q.Infos {
		b = be.AppendUint16(b, t)
	}
	return b
}

// MaxMetaQueries bounds the number of queries in one meta context option.
const MaxMetaQueries = 256

// MetaContextRequest is the data of NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT.
type MetaContextRequest struct {
	Name    string
	Queries []string
}

// DecodeMetaContextRequest decodes LIST/SET_META_CONTEXT data.
func DecodeMetaContextRequest(data []byte) (MetaContextRequest, error) {
	r := reader{p: data}
	name := r.str(r.u32())
	count := r.u32()
	if r.err == nil && count > MaxMetaQueries {
		r.fail("%d queries", count)
	}
	// Each query takes at least 4 bytes: check before allocating.
	if r.err == nil && uint64(count)*4 > uint64(len(r.p)) {
		r.fail("%d queries in %d bytes", count, len(r.p))
	}
	var qs []string
	for i := uint32(0); r.err == nil && i < count; i++ {
		qs = append(qs, r.str(r.u32()))
	}
	if err := r.end(); err != nil {
		return MetaContextRequest{}, err
	}
	return MetaContextRequest{Name: name, Queries: qs}, nil
}

// AppendMetaContextRequest appends LIST/SET_META_CONTEXT data.
func AppendMetaContextRequest(b []byte, q MetaContextRequest) []byte {
	b = be.AppendUint32(b, uint32(len(q.Name)))
	b = append(b, q.Name...)
	b = be.AppendUint32(b, uint32(len(q.Queries)))
	for _, s := range q.Queries {
		b = be.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

// AppendInfoExport appends the NBD_INFO_EXPORT payload of an NBD_REP_INFO.
func AppendInfoExport(b []byte, size uint64, flags uint16) []byte {
	b = be.AppendUint16(b, InfoExport)
	b = be.AppendUint64(b, size)
	return be.AppendUint16(b, flags)
}

// AppendInfoString appends an NBD_INFO_NAME or NBD_INFO_DESCRIPTION payload.
func AppendInfoString(b []byte, typ uint16, s string) []byte {
	b = be.AppendUint16(b, typ)
	return append(b, s...)
}

// AppendInfoBlockSize appends an NBD_INFO_BLOCK_SIZE payload.
func AppendInfoBlockSize(b []byte, minimum, preferred, maximum uint32) []byte {
	b = be.AppendUint16(b, InfoBlockSize)
	b = be.AppendUint32(b, minimum)
	b = be.AppendUint32(b, preferred)
	return be.AppendUint32(b, maximum)
}

// Info is a decoded NBD_REP_INFO payload. Only the fields of its Type are
// set; an unknown Type decodes without error (clients ignore it).
type Info struct {
	Type                uint16
	Size                uint64
	Flags               uint16
	Text                string // name or description
	MinBlock, PrefBlock uint32
	MaxPayload          uint32
}

// DecodeInfo decodes an NBD_REP_INFO payload with the lengths the spec
// fixes for each known type.
func DecodeInfo(data []byte) (Info, error) {
	r := reader{p: data}
	in := Info{Type: r.u16()}
	switch in.Type {
	case InfoExport:
		in.Size = r.u64()
		in.Flags = r.u16()
	case InfoName, InfoDescription:
		in.Text = r.str(uint32(len(r.p)))
	case InfoBlockSize:
		in.MinBlock, in.PrefBlock, in.MaxPayload = r.u32(), r.u32(), r.u32()
	default:
		r.p = nil
	}
	if err := r.end(); err != nil {
		return Info{}, err
	}
	return in, nil
}

// AppendRepServer appends an NBD_REP_SERVER payload: the export name and an
// optional description.
func AppendRepServer(b []byte, name, description string) []byte {
	b = be.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	return append(b, description...)
}

// DecodeRepServer decodes an NBD_REP_SERVER payload.
func DecodeRepServer(data []byte) (name, description string, err error) {
	r := reader{p: data}
	n := r.u32()
	name = r.str(n)
	description = r.str(uint32(len(r.p)))
	return name, description, r.end()
}

// AppendRepMetaContext appends an NBD_REP_META_CONTEXT payload.
func AppendRepMetaContext(b []byte, id uint32, name string) []byte {
	b = be.AppendUint32(b, id)
	return append(b, name...)
}

// DecodeRepMetaContext decodes an NBD_REP_META_CONTEXT payload.
func DecodeRepMetaContext(data []byte) (id uint32, name string, err error) {
	r := reader{p: data}
	id = r.u32()
	name = r.str(uint32(len(r.p)))
	return id, name, r.end()
}
