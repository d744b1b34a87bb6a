package nbdwire

import "testing"

// FuzzDecodeOption feeds option payloads to every option decoder the server
// uses. None may panic; a successful decode must re-encode to the same bytes.
func FuzzDecodeOption(f *testing.F) {
	f.Add(AppendInfoRequest(nil, InfoRequest{Name: "disk0", Infos: []uint16{InfoBlockSize}}))
	f.Add(AppendMetaContextRequest(nil, MetaContextRequest{Name: "", Queries: []string{"base:allocation", "qemu:allocation-depth"}}))
	f.Add([]byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Add(AppendOption(nil, OptGo, []byte{0, 0, 0, 0, 0, 0}))
	f.Fuzz(func(t *testing.T, p []byte) {
		if q, err := DecodeInfoRequest(p); err == nil {
			if string(AppendInfoRequest(nil, q)) != string(p) {
				t.Fatalf("info request does not round-trip: %x", p)
			}
		}
		if q, err := DecodeMetaContextRequest(p); err == nil {
			if string(AppendMetaContextRequest(nil, q)) != string(p) {
				t.Fatalf("meta context request does not round-trip: %x", p)
			}
		}
		if len(p) >= OptionHeaderSize {
			DecodeOptionHeader(p[:OptionHeaderSize])
		}
		DecodeInfo(p)
		DecodeRepServer(p)
		DecodeRepMetaContext(p)
	})
}

// FuzzDecodeRequest feeds request headers in both styles, and reply
// payloads the client decodes.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(AppendRequest(nil, Request{Type: CmdRead, Cookie: 1, Length: 4096}, false))
	f.Add(AppendRequest(nil, Request{Type: CmdBlockStatus, Flags: CmdFlagReqOne, Length: 1 << 33}, true))
	f.Add(AppendBlockStatus(nil, false, 1, []Descriptor{{Length: 512, Flags: 3}}))
	f.Fuzz(func(t *testing.T, p []byte) {
		for _, ext := range []bool{false, true} {
			if len(p) >= RequestSize(ext) {
				if r, err := DecodeRequest(p[:RequestSize(ext)], ext); err == nil {
					if !ext && r.Length > 1<<32-1 {
						t.Fatal("compact length over 32 bits")
					}
					if string(AppendRequest(nil, r, ext)) != string(p[:RequestSize(ext)]) {
						t.Fatalf("request does not round-trip: %x", p)
					}
				}
			}
			if _, ds, err := DecodeBlockStatus(p, ext); err == nil {
				for _, d := range ds {
					if d.Length == 0 {
						t.Fatal("zero-length descriptor accepted")
					}
				}
			}
		}
		if len(p) >= 4 {
			if n := ReplySize(be.Uint32(p)); n > 0 && len(p) >= n {
				DecodeReplyHeader(p[:n])
			}
		}
		DecodeErrorChunk(p)
		DecodeOffsetHole(p)
	})
}
