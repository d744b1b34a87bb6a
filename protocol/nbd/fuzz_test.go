package nbd

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/thinblk/thinblk/internal/nbdwire"
)

// FuzzClientSession plays arbitrary bytes as a server: the handshake and
// then replies. Dial and a few requests must fail or succeed, never panic
// or hang.
func FuzzClientSession(f *testing.F) {
	hello := nbdwire.AppendServerHello(nil, nbdwire.FlagFixedNewstyle|nbdwire.FlagNoZeroes)
	ack := func(opt uint32) []byte { return nbdwire.AppendOptionReply(nil, opt, nbdwire.RepAck, nil) }
	good := append([]byte{}, hello...)
	good = append(good, ack(nbdwire.OptExtendedHeaders)...)
	good = append(good, nbdwire.AppendOptionReply(nil, nbdwire.OptSetMetaContext, nbdwire.RepMetaContext, nbdwire.AppendRepMetaContext(nil, 1, nbdwire.ContextBaseAllocation))...)
	good = append(good, ack(nbdwire.OptSetMetaContext)...)
	good = append(good, nbdwire.AppendOptionReply(nil, nbdwire.OptGo, nbdwire.RepInfo, nbdwire.AppendInfoExport(nil, 1<<20, nbdwire.FlagHasFlags|nbdwire.FlagSendFlush))...)
	good = append(good, ack(nbdwire.OptGo)...)
	// Reply to the READ (cookie 1): a hole, then data.
	good = append(good, nbdwire.AppendChunkHeader(nil, true, 0, nbdwire.ReplyTypeOffsetHole, 1, 0, nbdwire.OffsetHoleSize)...)
	good = append(good, nbdwire.AppendOffsetHole(nil, 0, 2048)...)
	good = append(good, nbdwire.AppendChunkHeader(nil, true, nbdwire.ReplyFlagDone, nbdwire.ReplyTypeOffsetData, 1, 0, 8+2048)...)
	good = append(good, make([]byte, 8+2048)...)
	good[len(good)-2048-2] = 0x08 // offset 2048
	f.Add(good)
	f.Add(hello)
	f.Add(append(append([]byte{}, hello...), nbdwire.AppendOptionReply(nil, nbdwire.OptExtendedHeaders, nbdwire.RepErrUnsup, nil)...))
	f.Fuzz(func(t *testing.T, stream []byte) {
		cli, srv := net.Pipe()
		go io.Copy(io.Discard, srv)
		go func() {
			srv.SetWriteDeadline(time.Now().Add(2 * time.Second))
			srv.Write(stream)
			srv.Close()
		}()
		done := make(chan struct{})
		go func() {
			defer close(done)
			c, err := newClient(cli, "fuzz", Target{}, false, Options{})
			if err != nil {
				return
			}
			p := make([]byte, 4096)
			c.Pread(p, 0)
			c.BlockStatus(0, 4096)
			c.Pwrite(p, 0, 0)
			c.Close()
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("client hung on a server that went away")
		}
	})
}
