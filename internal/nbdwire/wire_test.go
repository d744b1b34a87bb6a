package nbdwire

import (
	"bytes"
	"errors"
	"testing"
)

func TestRequestRoundTrip(t *testing.T) {
	for _, ext := range []bool{false, true} {
		r := Request{Flags: CmdFlagFUA, Type: CmdWrite, Cookie: 0x1122334455667788, Offset: 1 << 40, Length: 4096}
		b := AppendRequest(nil, r, ext)
		if len(b) != RequestSize(ext) {
			t.Fatalf("ext=%v: header %d bytes", ext, len(b))
		}
		got, err := DecodeRequest(b, ext)
		if err != nil || got != r {
			t.Fatalf("ext=%v: got %+v, %v; want %+v", ext, got, err, r)
		}
		// The other style's magic is refused.
		if _, err := DecodeRequest(AppendRequest(nil, r, !ext)[:RequestSize(ext)], ext); !errors.Is(err, ErrMalformed) && RequestSize(ext) <= RequestSize(!ext) {
			t.Fatalf("ext=%v: wrong-style magic accepted: %v", ext, err)
		}
	}
	if _, err := DecodeRequest(make([]byte, 27), false); !errors.Is(err, ErrMalformed) {
		t.Fatal("short header accepted")
	}
	// 64-bit effect lengths survive only in extended mode.
	r := Request{Type: CmdTrim, Length: 1 << 33}
	if got, _ := DecodeRequest(AppendRequest(nil, r, true), true); got.Length != 1<<33 {
		t.Fatalf("extended length lost: %d", got.Length)
	}
}

func TestInfoRequest(t *testing.T) {
	q := InfoRequest{Name: "disk0", Infos: []uint16{InfoBlockSize, InfoName}}
	got, err := DecodeInfoRequest(AppendInfoRequest(nil, q))
	if err != nil || got.Name != q.Name || len(got.Infos) != 2 || got.Infos[0] != InfoBlockSize {
		t.Fatalf("got %+v %v", got, err)
	}
	bad := [][]byte{
		{},
		{0, 0, 0, 9, 'a', 0, 0},       // name overruns
		{0, 0, 0, 1, 'a', 0, 2, 0, 3}, // 2 infos, 1 present
		{0, 0, 0, 1, 0, 0, 0},         // NUL in name
		{0, 0, 0, 0, 0, 0, 1},         // trailing byte
		append([]byte{0, 0, 0x10, 0x01}, make([]byte, 4099)...), // name over 4096
	}
	for i, p := range bad {
		if _, err := DecodeInfoRequest(p); !errors.Is(err, ErrMalformed) {
			t.Errorf("case %d accepted: %v", i, err)
		}
	}
}

func TestMetaContextRequest(t *testing.T) {
	q := MetaContextRequest{Name: "", Queries: []string{"base:allocation", "qemu:"}}
	got, err := DecodeMetaContextRequest(AppendMetaContextRequest(nil, q))
	if err != nil || len(got.Queries) != 2 || got.Queries[1] != "qemu:" {
		t.Fatalf("got %+v %v", got, err)
	}
	// A huge query count with no data must fail before allocating.
	if _, err := DecodeMetaContextRequest([]byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}); !errors.Is(err, ErrMalformed) {
		t.Fatal("huge count accepted")
	}
	if _, err := DecodeMetaContextRequest([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 'a'}); !errors.Is(err, ErrMalformed) {
		t.Fatal("overrunning query accepted")
	}
}

func TestReplies(t *testing.T) {
	b := AppendSimpleReply(nil, EIO, 7)
	h, err := DecodeReplyHeader(b)
	if err != nil || !h.Simple() || h.Error != EIO || h.Cookie != 7 || !h.Done() {
		t.Fatalf("simple: %+v %v", h, err)
	}
	for _, ext := range []bool{false, true} {
		b = AppendChunkHeader(nil, ext, ReplyFlagDone, ReplyTypeOffsetHole, 9, 4096, OffsetHoleSize)
		h, err = DecodeReplyHeader(b)
		if err != nil || h.Type != ReplyTypeOffsetHole || h.Length != OffsetHoleSize || h.Cookie != 9 || !h.Done() {
			t.Fatalf("chunk ext=%v: %+v %v", ext, h, err)
		}
		if ext && h.Offset != 4096 {
			t.Fatalf("extended offset %d", h.Offset)
		}
		ds := []Descriptor{{Length: 512, Flags: uint64(StateHole | StateZero)}, {Length: 1 << 20, Flags: 0}}
		p := AppendBlockStatus(nil, ext, 3, ds)
		if len(p) != BlockStatusSize(ext, 2) {
			t.Fatalf("status size %d", len(p))
		}
		id, got, err := DecodeBlockStatus(p, ext)
		if err != nil || id != 3 || len(got) != 2 || got[0] != ds[0] || got[1] != ds[1] {
			t.Fatalf("status ext=%v: %d %v %v", ext, id, got, err)
		}
		if _, _, err := DecodeBlockStatus(p[:len(p)-1], ext); !errors.Is(err, ErrMalformed) {
			t.Fatal("truncated status accepted")
		}
	}
	if _, err := DecodeReplyHeader([]byte{1, 2, 3, 4}); !errors.Is(err, ErrMalformed) {
		t.Fatal("bad magic accepted")
	}
	e := AppendErrorChunk(nil, EPERM, "read-only")
	if n, msg, err := DecodeErrorChunk(e); err != nil || n != EPERM || msg != "read-only" {
		t.Fatalf("error chunk %d %q %v", n, msg, err)
	}
	if _, _, err := DecodeErrorChunk([]byte{0, 0, 0, 1, 0, 9, 'x'}); !errors.Is(err, ErrMalformed) {
		t.Fatal("overlong message accepted")
	}
}

func TestHandshakeCodec(t *testing.T) {
	f, err := DecodeServerHello(AppendServerHello(nil, FlagFixedNewstyle|FlagNoZeroes))
	if err != nil || f != FlagFixedNewstyle|FlagNoZeroes {
		t.Fatal(f, err)
	}
	o := AppendOption(nil, OptGo, []byte{1, 2})
	h, err := DecodeOptionHeader(o[:OptionHeaderSize])
	if err != nil || h.Option != OptGo || h.Length != 2 {
		t.Fatal(h, err)
	}
	r := AppendOptionReply(nil, OptGo, RepErrUnknown, []byte("x"))
	rh, err := DecodeOptionReplyHeader(r[:OptionReplyHeaderSize])
	if err != nil || rh.Type != RepErrUnknown || rh.Length != 1 || !IsRepError(rh.Type) {
		t.Fatal(rh, err)
	}
	in, err := DecodeInfo(AppendInfoBlockSize(nil, 1, 4096, 32<<20))
	if err != nil || in.PrefBlock != 4096 || in.MaxPayload != 32<<20 {
		t.Fatal(in, err)
	}
	if _, err := DecodeInfo([]byte{0, 0, 1}); !errors.Is(err, ErrMalformed) {
		t.Fatal("short INFO_EXPORT accepted")
	}
	rep := AppendExportNameReply(nil, 1<<30, FlagHasFlags, false)
	if len(rep) != ExportNameReplySize(false) || !bytes.Equal(rep[10:], make([]byte, 124)) {
		t.Fatal("export name reply shape")
	}
}
