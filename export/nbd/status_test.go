package nbd

import (
	"io"
	"testing"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/nbdwire"
	"github.com/thinblk/thinblk/protocol/mem"
)

// statusReply reads one block status reply: the descriptors per context.
func (c *rawClient) statusReply(ext bool) map[uint32][]nbdwire.Descriptor {
	got := map[uint32][]nbdwire.Descriptor{}
	for {
		var b [nbdwire.ExtendedReplySize]byte
		io.ReadFull(c.br, b[:4])
		n := nbdwire.ReplySize(be32(b[:4]))
		io.ReadFull(c.br, b[4:n])
		h, err := nbdwire.DecodeReplyHeader(b[:n])
		if err != nil {
			c.t.Fatal(err)
		}
		p := make([]byte, h.Length)
		io.ReadFull(c.br, p)
		if nbdwire.IsErrorChunk(h.Type) {
			e, msg, _ := nbdwire.DecodeErrorChunk(p)
			c.t.Fatalf("block status error %d: %s", e, msg)
		}
		if h.Type == nbdwire.ReplyTypeBlockStatus || h.Type == nbdwire.ReplyTypeBlockStatusExt {
			if (h.Type == nbdwire.ReplyTypeBlockStatusExt) != ext {
				c.t.Fatalf("status chunk type %d with extended=%v", h.Type, ext)
			}
			id, ds, err := nbdwire.DecodeBlockStatus(p, ext)
			if err != nil {
				c.t.Fatal(err)
			}
			got[id] = ds
		}
		if h.Done() {
			return got
		}
	}
}

// TestBlockStatusContexts checks base:allocation and qemu:allocation-depth
// descriptors, REQ_ONE, and both header styles, on a mem node with data,
// an anchored zero chunk and a hole.
func TestBlockStatusContexts(t *testing.T) {
	m := mem.New(1 << 20)
	m.Pwrite(make([]byte, 64<<10), 0, 0)               // data (reads zero, but stored)
	m.WriteZeroes(128<<10, 64<<10, 0)                  // anchored zeros: Zero|Allocated
	m.Pwrite([]byte{1}, 256<<10, 0)                    // data
	_ = m.WriteZeroes(512<<10, 64<<10, block.MayUnmap) // stays a hole
	s := &Server{Exports: map[string]*Export{"d": {Name: "d", Node: m, AllocationDepth: true}}}
	sock, _ := startServer(t, s, "d")
	for _, ext := range []bool{false, true} {
		c := dialRaw(t, sock)
		c.write(be32bytes(nbdwire.FlagCFixedNewstyle | nbdwire.FlagCNoZeroes))
		opt := nbdwire.OptStructuredReply
		if ext {
			opt = nbdwire.OptExtendedHeaders
		}
		c.write(nbdwire.AppendOption(nil, opt, nil))
		c.finalReply()
		c.write(nbdwire.AppendOption(nil, nbdwire.OptSetMetaContext, nbdwire.AppendMetaContextRequest(nil,
			nbdwire.MetaContextRequest{Name: "d", Queries: []string{"base:allocation", "qemu:allocation-depth", "x-unknown:foo"}})))
		ids := map[string]uint32{}
		for {
			rh, p, err := c.optReply()
			if err != nil {
				t.Fatal(err)
			}
			if rh.Type != nbdwire.RepMetaContext {
				break
			}
			id, name, _ := nbdwire.DecodeRepMetaContext(p)
			ids[name] = id
		}
		if len(ids) != 2 {
			t.Fatalf("contexts %v", ids)
		}
		c.write(nbdwire.AppendOption(nil, nbdwire.OptGo, nbdwire.AppendInfoRequest(nil, nbdwire.InfoRequest{Name: "d"})))
		c.finalReply()

		c.write(nbdwire.AppendRequest(nil, nbdwire.Request{Type: nbdwire.CmdBlockStatus, Cookie: 1, Length: 1 << 20}, ext))
		got := c.statusReply(ext)
		base, depth := got[ids[nbdwire.ContextBaseAllocation]], got[ids[nbdwire.ContextAllocDepth]]
		// Anchored zeros have no Data: HOLE|ZERO, as qemu-nbd reports qcow2 zero
		// clusters that keep their storage.
		wantBase := []nbdwire.Descriptor{d(64<<10, 0), d(192<<10, 3), d(64<<10, 0), d(704<<10, 3)}
		if !equalDesc(base, wantBase) {
			t.Errorf("ext=%v base:allocation %v, want %v", ext, base, wantBase)
		}
		// mem reports holes as Zero (present), so depth is 1 everywhere.
		if !equalDesc(depth, []nbdwire.Descriptor{d(1<<20, 1)}) {
			t.Errorf("ext=%v allocation depth %v", ext, depth)
		}
		// REQ_ONE: one descriptor per context, within the request.
		c.write(nbdwire.AppendRequest(nil, nbdwire.Request{Type: nbdwire.CmdBlockStatus, Flags: nbdwire.CmdFlagReqOne, Cookie: 2, Offset: 64 << 10, Length: 100 << 10}, ext))
		got = c.statusReply(ext)
		if b := got[ids[nbdwire.ContextBaseAllocation]]; !equalDesc(b, []nbdwire.Descriptor{d(100<<10, 3)}) {
			t.Errorf("ext=%v REQ_ONE base %v", ext, b)
		}
		if dd := got[ids[nbdwire.ContextAllocDepth]]; !equalDesc(dd, []nbdwire.Descriptor{d(100<<10, 1)}) {
			t.Errorf("ext=%v REQ_ONE depth %v", ext, dd)
		}
	}
}

// d is a descriptor literal.
func d(n, flags uint64) nbdwire.Descriptor { return nbdwire.Descriptor{Length: n, Flags: flags} }

func equalDesc(a, b []nbdwire.Descriptor) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
