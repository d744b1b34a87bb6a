package nbd

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/nbdwire"
	"github.com/thinblk/thinblk/protocol/mem"
)

const negScript = `
h.set_strict_mode(0)
def case(name, fn):
    try:
        fn()
        print(name, "OK")
    except nbd.Error as e:
        print(name, "ERR", e.errno)
size = h.get_size()
case("read-over-max", lambda: h.pread(33*1024*1024, 0))
case("read-past-end", lambda: h.pread(4096, size))
case("read-straddling-end", lambda: h.pread(8192, size - 4096))
case("write-past-end", lambda: h.pwrite(b"x"*4096, size))
case("trim-past-end", lambda: h.trim(4096, size))
case("write", lambda: h.pwrite(b"x"*512, 0))
case("trim", lambda: h.trim(512, 0))
case("zero", lambda: h.zero(512, 0))
case("bad-flags", lambda: h.pread(512, 0, flags=0x40))
case("fast-zero-flag-on-read", lambda: h.pread(512, 0, flags=nbd.CMD_FLAG_FAST_ZERO))
case("block-status-no-ctx", lambda: h.block_status(512, 0, lambda *a: 0))
case("alive", lambda: h.pread(512, 0))
`

// TestNbdshNegative sends requests a server must refuse, with libnbd's
// strict mode off, and checks the NBD error for each.
func TestNbdshNegative(t *testing.T) {
	if exec.Command("bash", "-c", "PATH=/usr/bin:$PATH nbdsh -c pass").Run() != nil {
		if _, err := exec.LookPath("nbdsh"); err == nil || os.Getenv("CI") == "true" {
			t.Fatal("nbdsh does not run (PATH=/usr/bin:$PATH nbdsh -c pass)")
		}
		t.Skip("nbdsh missing")
	}
	s := &Server{Exports: map[string]*Export{
		"ro": {Name: "ro", Node: mem.New(1 << 20), ReadOnly: true},
		"rw": {Name: "rw", Node: mem.New(1 << 20), Discard: block.DiscardUnmap},
	}}
	sock, _ := startServer(t, s, "")
	want := map[string]map[string]string{
		"ro": {"read-over-max": "EINVAL", "read-past-end": "EINVAL", "read-straddling-end": "EINVAL",
			"write-past-end": "EPERM", "trim-past-end": "EPERM", "write": "EPERM", "trim": "EPERM", "zero": "EPERM",
			"bad-flags": "EINVAL", "fast-zero-flag-on-read": "EINVAL", "block-status-no-ctx": "EINVAL", "alive": "OK"},
		"rw": {"read-over-max": "EINVAL", "read-past-end": "EINVAL", "read-straddling-end": "EINVAL",
			"write-past-end": "ENOSPC", "trim-past-end": "EINVAL", "write": "OK", "trim": "OK", "zero": "OK",
			"bad-flags": "EINVAL", "fast-zero-flag-on-read": "EINVAL", "block-status-no-ctx": "EINVAL", "alive": "OK"},
	}
	for name, cases := range want {
		cmd := exec.Command("nbdsh", "-u", "nbd+unix:///"+name+"?socket="+sock, "-c", negScript)
		cmd.Env = append(os.Environ(), "PATH=/usr/bin:"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("nbdsh on %s: %v\n%s", name, err, out)
		}
		got := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				got[f[0]] = f[len(f)-1]
			}
		}
		for c, w := range cases {
			if got[c] != w {
				t.Errorf("export %s, %s: got %q, want %s", name, c, got[c], w)
			}
		}
	}
}

// rawClient is a hand-driven client for malformed input.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, sock string) *rawClient {
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
	var hello [nbdwire.ServerHelloSize]byte
	if _, err := io.ReadFull(c.br, hello[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := nbdwire.DecodeServerHello(hello[:]); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *rawClient) write(p []byte) {
	if _, err := c.nc.Write(p); err != nil {
		c.t.Fatal(err)
	}
}

// optReply reads one option reply.
func (c *rawClient) optReply() (nbdwire.OptionReplyHeader, []byte, error) {
	var h [nbdwire.OptionReplyHeaderSize]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return nbdwire.OptionReplyHeader{}, nil, err
	}
	rh, err := nbdwire.DecodeOptionReplyHeader(h[:])
	if err != nil {
		return rh, nil, err
	}
	p := make([]byte, rh.Length)
	_, err = io.ReadFull(c.br, p)
	return rh, p, err
}

// finalReply reads option replies until the final one.
func (c *rawClient) finalReply() uint32 {
	for {
		rh, _, err := c.optReply()
		if err != nil {
			c.t.Fatal(err)
		}
		if rh.Type != nbdwire.RepInfo && rh.Type != nbdwire.RepServer && rh.Type != nbdwire.RepMetaContext {
			return rh.Type
		}
	}
}

// closed reports whether the server hung up (EOF) within the deadline.
func (c *rawClient) closed() bool {
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.br.ReadByte()
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || (err != nil && strings.Contains(err.Error(), "reset"))
}

// goExport negotiates structured replies (and extended headers) and enters
// transmission on export name.
func (c *rawClient) goExport(name string, extended bool) {
	c.write(be32bytes(nbdwire.FlagCFixedNewstyle | nbdwire.FlagCNoZeroes))
	opt := nbdwire.OptStructuredReply
	if extended {
		opt = nbdwire.OptExtendedHeaders
	}
	c.write(nbdwire.AppendOption(nil, opt, nil))
	if r := c.finalReply(); r != nbdwire.RepAck {
		c.t.Fatalf("option %d: reply %#x", opt, r)
	}
	c.write(nbdwire.AppendOption(nil, nbdwire.OptGo, nbdwire.AppendInfoRequest(nil, nbdwire.InfoRequest{Name: name})))
	if r := c.finalReply(); r != nbdwire.RepAck {
		c.t.Fatalf("GO: reply %#x", r)
	}
}

// reply reads one reply header (skipping a payload) and returns it with
// the error value of an error chunk.
func (c *rawClient) reply() (nbdwire.ReplyHeader, uint32) {
	var b [nbdwire.ExtendedReplySize]byte
	if _, err := io.ReadFull(c.br, b[:4]); err != nil {
		c.t.Fatal(err)
	}
	n := nbdwire.ReplySize(be32(b[:4]))
	if n == 0 {
		c.t.Fatalf("bad reply magic %x", b[:4])
	}
	io.ReadFull(c.br, b[4:n])
	h, err := nbdwire.DecodeReplyHeader(b[:n])
	if err != nil {
		c.t.Fatal(err)
	}
	p := make([]byte, h.Length)
	io.ReadFull(c.br, p)
	if nbdwire.IsErrorChunk(h.Type) {
		e, _, _ := nbdwire.DecodeErrorChunk(p)
		return h, e
	}
	return h, h.Error
}

func be32bytes(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

func TestMalformedInput(t *testing.T) {
	s := &Server{Exports: map[string]*Export{"d": {Name: "d", Node: mem.New(1 << 20)}}}
	sock, _ := startServer(t, s, "d")

	t.Run("unknown-client-flags", func(t *testing.T) {
		c := dialRaw(t, sock)
		c.write(be32bytes(0x80))
		if !c.closed() {
			t.Fatal("server kept a client with unknown flags")
		}
	})
	t.Run("bad-option-magic", func(t *testing.T) {
		c := dialRaw(t, sock)
		c.write(be32bytes(nbdwire.FlagCFixedNewstyle))
		c.write(make([]byte, 16))
		if !c.closed() {
			t.Fatal("server kept a client sending a bad option magic")
		}
	})
	t.Run("unknown-option", func(t *testing.T) {
		c := dialRaw(t, sock)
		c.write(be32bytes(nbdwire.FlagCFixedNewstyle))
		c.write(nbdwire.AppendOption(nil, 99, []byte("junk")))
		if r := c.finalReply(); r != nbdwire.RepErrUnsup {
			t.Fatalf("unknown option: reply %#x, want ERR_UNSUP", r)
		}
		c.write(nbdwire.AppendOption(nil, nbdwire.OptList, []byte("x")))
		if r := c.finalReply(); r != nbdwire.RepErrInvalid {
			t.Fatalf("LIST with data: reply %#x, want ERR_INVALID", r)
		}
		c.write(nbdwire.AppendOption(nil, nbdwire.OptGo, []byte{0, 0, 0, 9}))
		if r := c.finalReply(); r != nbdwire.RepErrInvalid {
			t.Fatalf("truncated GO: reply %#x, want ERR_INVALID", r)
		}
		c.write(nbdwire.AppendOption(nil, nbdwire.OptGo, nbdwire.AppendInfoRequest(nil, nbdwire.InfoRequest{Name: "nope"})))
		if r := c.finalReply(); r != nbdwire.RepErrUnknown {
			t.Fatalf("unknown export: reply %#x, want ERR_UNKNOWN", r)
		}
		c.write(nbdwire.AppendOption(nil, nbdwire.OptSetMetaContext, nbdwire.AppendMetaContextRequest(nil, nbdwire.MetaContextRequest{Name: "d", Queries: []string{"base:allocation"}})))
		if r := c.finalReply(); r != nbdwire.RepErrInvalid {
			t.Fatalf("SET_META_CONTEXT before structured replies: reply %#x, want ERR_INVALID", r)
		}
		c.write(nbdwire.AppendOption(nil, nbdwire.OptStartTLS, nil))
		if r := c.finalReply(); r != nbdwire.RepErrPolicy {
			t.Fatalf("STARTTLS without TLS: reply %#x, want ERR_POLICY", r)
		}
		c.write(nbdwire.AppendOption(nil, nbdwire.OptAbort, nil))
		c.finalReply()
		if !c.closed() {
			t.Fatal("ABORT did not end the session")
		}
	})
	t.Run("huge-option", func(t *testing.T) {
		c := dialRaw(t, sock)
		c.write(be32bytes(nbdwire.FlagCFixedNewstyle))
		h := nbdwire.AppendOption(nil, nbdwire.OptGo, nil)
		h[12], h[13], h[14], h[15] = 0x7f, 0xff, 0xff, 0xff
		c.write(h)
		if !c.closed() {
			t.Fatal("server waits for a 2 GiB option")
		}
	})
	for _, ext := range []bool{false, true} {
		name := "compact"
		if ext {
			name = "extended"
		}
		t.Run("transmission-"+name, func(t *testing.T) {
			c := dialRaw(t, sock)
			c.goExport("d", ext)
			send := func(r nbdwire.Request, payload []byte) {
				c.write(append(nbdwire.AppendRequest(nil, r, ext), payload...))
			}
			// Unknown command.
			send(nbdwire.Request{Type: 42, Cookie: 1, Length: 512}, nil)
			if h, e := c.reply(); h.Cookie != 1 || e != nbdwire.EINVAL {
				t.Fatalf("unknown command: cookie %d error %d", h.Cookie, e)
			}
			// Extended write without PAYLOAD_LEN / compact with it.
			if ext {
				send(nbdwire.Request{Type: nbdwire.CmdWrite, Cookie: 2, Length: 512}, nil)
			} else {
				send(nbdwire.Request{Type: nbdwire.CmdRead, Flags: nbdwire.CmdFlagPayloadLen, Cookie: 2, Length: 512}, nil)
			}
			if _, e := c.reply(); e != nbdwire.EINVAL {
				t.Fatalf("PAYLOAD_LEN misuse: error %d", e)
			}
			// A write over the maximum payload: compact skips it and refuses.
			if !ext {
				big := make([]byte, 33<<20)
				send(nbdwire.Request{Type: nbdwire.CmdWrite, Cookie: 3, Length: uint64(len(big))}, big)
				if _, e := c.reply(); e != nbdwire.EINVAL {
					t.Fatalf("oversized write: error %d", e)
				}
			}
			// Still in sync: a good read works.
			send(nbdwire.Request{Type: nbdwire.CmdRead, Cookie: 4, Length: 512}, nil)
			if h, e := c.reply(); h.Cookie != 4 || e != 0 {
				t.Fatalf("read after errors: cookie %d error %d", h.Cookie, e)
			}
			// Bad magic: disconnect.
			c.write(make([]byte, nbdwire.RequestSize(ext)))
			if !c.closed() {
				t.Fatal("bad request magic did not disconnect")
			}
		})
	}
	// The server still serves others.
	c := dialRaw(t, sock)
	c.goExport("d", false)
}

// TestStalledClientDoesNotBlockOthers: a client that stops reading its
// replies, or never finishes its handshake, does not stop another client.
func TestStalledClientDoesNotBlockOthers(t *testing.T) {
	s := &Server{Exports: map[string]*Export{"d": {Name: "d", Node: mem.New(64 << 20)}}}
	sock, _ := startServer(t, s, "d")
	idle := dialRaw(t, sock) // never negotiates
	_ = idle
	hog := dialRaw(t, sock)
	hog.goExport("d", false)
	// Queue many large reads and never read the replies.
	for i := 0; i < 64; i++ {
		hog.write(nbdwire.AppendRequest(nil, nbdwire.Request{Type: nbdwire.CmdRead, Cookie: uint64(i), Length: 4 << 20}, false))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := dialRaw(t, sock)
		c.goExport("d", false)
		c.write(nbdwire.AppendRequest(nil, nbdwire.Request{Type: nbdwire.CmdRead, Cookie: 7, Length: 4096}, false))
		if h, e := c.reply(); h.Cookie != 7 || e != 0 {
			t.Errorf("read: cookie %d error %d", h.Cookie, e)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a stalled client blocked another one")
	}

}
