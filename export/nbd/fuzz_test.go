package nbd

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/nbdwire"
	"github.com/thinblk/thinblk/protocol/mem"
)

// FuzzServerSession feeds arbitrary client byte streams to a server
// connection: it must neither panic nor hang, whatever the bytes.
func FuzzServerSession(f *testing.F) {
	flags := be32bytes(nbdwire.FlagCFixedNewstyle | nbdwire.FlagCNoZeroes)
	goOpt := nbdwire.AppendOption(nil, nbdwire.OptGo, nbdwire.AppendInfoRequest(nil, nbdwire.InfoRequest{Name: "d"}))
	sr := nbdwire.AppendOption(nil, nbdwire.OptStructuredReply, nil)
	eh := nbdwire.AppendOption(nil, nbdwire.OptExtendedHeaders, nil)
	meta := nbdwire.AppendOption(nil, nbdwire.OptSetMetaContext, nbdwire.AppendMetaContextRequest(nil,
		nbdwire.MetaContextRequest{Name: "d", Queries: []string{"base:allocation", "qemu:allocation-depth"}}))
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	req := func(ext bool, typ, fl uint16, off, n uint64) []byte {
		return nbdwire.AppendRequest(nil, nbdwire.Request{Type: typ, Flags: fl, Cookie: 1, Offset: off, Length: n}, ext)
	}
	f.Add(cat(flags, goOpt, req(false, nbdwire.CmdRead, 0, 0, 4096)))
	f.Add(cat(flags, sr, meta, goOpt, req(false, nbdwire.CmdBlockStatus, nbdwire.CmdFlagReqOne, 0, 1<<20),
		req(false, nbdwire.CmdRead, 0, 0, 128<<10), req(false, nbdwire.CmdWrite, nbdwire.CmdFlagFUA, 512, 4), []byte("abcd")))
	f.Add(cat(flags, eh, meta, goOpt, req(true, nbdwire.CmdWrite, nbdwire.CmdFlagPayloadLen, 0, 8), []byte("12345678"),
		req(true, nbdwire.CmdWriteZeroes, nbdwire.CmdFlagFastZero, 0, 1<<40), req(true, nbdwire.CmdBlockStatus, 0, 0, 1<<30)))
	f.Add(cat(flags, nbdwire.AppendOption(nil, nbdwire.OptList, nil), nbdwire.AppendOption(nil, nbdwire.OptExportName, []byte("d")),
		req(false, nbdwire.CmdTrim, 0, 0, 1<<20), req(false, nbdwire.CmdDisc, 0, 0, 0)))
	f.Fuzz(func(t *testing.T, stream []byte) {
		m := mem.New(1 << 20)
		s := &Server{Exports: map[string]*Export{"d": {Name: "d", Node: m, Discard: block.DiscardUnmap, AllocationDepth: true}},
			Logger: testLogger(&testing.T{}), HandshakeTimeout: 2 * time.Second}
		for _, e := range s.Exports {
			if err := e.prepare(); err != nil {
				t.Fatal(err)
			}
		}
		cli, srv := net.Pipe()
		c := newConn(s, srv)
		done := make(chan struct{})
		go func() { c.serve(); close(done) }()
		go io.Copy(io.Discard, cli)
		cli.SetWriteDeadline(time.Now().Add(2 * time.Second))
		cli.Write(stream)
		cli.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("server connection did not end after the client left")
		}
	})
}
