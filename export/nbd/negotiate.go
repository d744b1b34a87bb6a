package nbd

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/thinblk/thinblk/internal/nbdwire"
)

// Metadata context ids this server hands out.
const (
	ctxBaseAllocation uint32 = 1
	ctxAllocDepth     uint32 = 2
)

// errAbort ends negotiation without entering transmission.
var errAbort = errors.New("client aborted negotiation")

// negotiate runs option haggling. On success c.exp is set and the
// connection enters transmission.
func (c *conn) negotiate() error {
	timeout := c.s.HandshakeTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	c.raw.SetDeadline(time.Now().Add(timeout))
	defer c.raw.SetDeadline(time.Time{})

	c.bw.Write(nbdwire.AppendServerHello(nil, nbdwire.FlagFixedNewstyle|nbdwire.FlagNoZeroes))
	if err := c.bw.Flush(); err != nil {
		return err
	}
	var cf [4]byte
	if _, err := io.ReadFull(c.br, cf[:]); err != nil {
		return err
	}
	clientFlags := be32(cf[:])
	if clientFlags&^(nbdwire.FlagCFixedNewstyle|nbdwire.FlagCNoZeroes) != 0 {
		return fmt.Errorf("unknown client flags %#x", clientFlags)
	}
	fixed := clientFlags&nbdwire.FlagCFixedNewstyle != 0
	c.noZeroes = clientFlags&nbdwire.FlagCNoZeroes != 0

	var hdr [nbdwire.OptionHeaderSize]byte
	for {
		if c.stopping() {
			return ErrServerClosed
		}
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return err
		}
		oh, err := nbdwire.DecodeOptionHeader(hdr[:])
		if err != nil {
			return err
		}
		if oh.Length > nbdwire.MaxOptionLength {
			// Drain what a sane client could send and say it is too big;
			// beyond that, treat it as an attack.
			if oh.Length > 1<<20 {
				return fmt.Errorf("option %d with %d bytes of data", oh.Option, oh.Length)
			}
			if _, err := io.CopyN(io.Discard, c.br, int64(oh.Length)); err != nil {
				return err
			}
			if err := c.optReply(oh.Option, nbdwire.RepErrTooBig, "option data too long"); err != nil {
				return err
			}
			continue
		}
		data := make([]byte, oh.Length)
		if _, err := io.ReadFull(c.br, data); err != nil {
			return err
		}
		if !fixed && oh.Option != nbdwire.OptExportName {
			return fmt.Errorf("option %d from a non-fixed-newstyle client", oh.Option)
		}
		done, err := c.option(oh.Option, data)
		if err != nil || done {
			return err
		}
	}
}

// option handles one option. done means transmission starts.
func (c *conn) option(opt uint32, data []byte) (done bool, err error) {
	if c.stopping() && opt != nbdwire.OptAbort {
		if opt == nbdwire.OptExportName {
			return false, ErrServerClosed
		}
		return false, c.optReply(opt, nbdwire.RepErrShutdown, "server is shutting down")
	}
	if c.s.TLSConfig != nil && !c.tls && opt != nbdwire.OptStartTLS && opt != nbdwire.OptAbort {
		if opt == nbdwire.OptExportName {
			return false, errors.New("NBD_OPT_EXPORT_NAME before STARTTLS")
		}
		return false, c.optReply(opt, nbdwire.RepErrTLSReqd, "TLS is required")
	}
	switch opt {
	case nbdwire.OptExportName:
		if c.extended {
			return false, errors.New("NBD_OPT_EXPORT_NAME after extended headers")
		}
		if nbdwire.CheckString(string(data)) != nil {
			return false, errors.New("bad export name")
		}
		e := c.s.lookup(string(data))
		if e == nil {
			return false, fmt.Errorf("unknown export %q", data)
		}
		c.enter(e, string(data))
		c.bw.Write(nbdwire.AppendExportNameReply(nil, uint64(e.node.Size()), c.flags, c.noZeroes))
		return true, c.bw.Flush()

	case nbdwire.OptAbort:
		c.optReply(opt, nbdwire.RepAck, "")
		return false, errAbort

	case nbdwire.OptList:
		if len(data) != 0 {
			return false, c.optReply(opt, nbdwire.RepErrInvalid, "NBD_OPT_LIST takes no data")
		}
		for _, e := range c.s.Exports {
			c.bw.Write(nbdwire.AppendOptionReply(nil, opt, nbdwire.RepServer, nbdwire.AppendRepServer(nil, e.Name, e.Description)))
		}
		return false, c.optReply(opt, nbdwire.RepAck, "")

	case nbdwire.OptStartTLS:
		if c.s.TLSConfig == nil {
			return false, c.optReply(opt, nbdwire.RepErrPolicy, "TLS is not configured")
		}
		if len(data) != 0 {
			return false, c.optReply(opt, nbdwire.RepErrInvalid, "NBD_OPT_STARTTLS takes no data")
		}
		if c.tls {
			return false, c.optReply(opt, nbdwire.RepErrInvalid, "TLS already negotiated")
		}
		if err := c.optReply(opt, nbdwire.RepAck, ""); err != nil {
			return false, err
		}
		tc := tls.Server(c.nc, c.s.TLSConfig)
		if err := tc.Handshake(); err != nil {
			return false, fmt.Errorf("TLS handshake: %w", err)
		}
		c.nc = tc
		c.br = bufio.NewReaderSize(tc, readBufSize)
		c.bw = bufio.NewWriterSize(tc, writeBufSize)
		c.tls = true
		// Nothing negotiated before STARTTLS survives it.
		c.structured, c.extended, c.meta, c.metaExport = false, false, nil, ""
		return false, nil

	case nbdwire.OptInfo, nbdwire.OptGo:
		q, err := nbdwire.DecodeInfoRequest(data)
		if err != nil {
			return false, c.optReply(opt, nbdwire.RepErrInvalid, err.Error())
		}
		e := c.s.lookup(q.Name)
		if e == nil {
			return false, c.optReply(opt, nbdwire.RepErrUnknown, fmt.Sprintf("export %q not found", q.Name))
		}
		flags := e.flags | c.connFlags()
		c.info(opt, nbdwire.AppendInfoExport(nil, uint64(e.node.Size()), flags))
		for _, t := range q.Infos {
			switch t {
			case nbdwire.InfoName:
				c.info(opt, nbdwire.AppendInfoString(nil, nbdwire.InfoName, e.Name))
			case nbdwire.InfoDescription:
				if e.Description != "" {
					c.info(opt, nbdwire.AppendInfoString(nil, nbdwire.InfoDescription, e.Description))
				}
			}
		}
		// Always sent: clients that did not ask may ignore it.
		c.info(opt, nbdwire.AppendInfoBlockSize(nil, e.minBlk, e.prefBlk, e.maxPay))
		if opt == nbdwire.OptInfo {
			return false, c.optReply(opt, nbdwire.RepAck, "")
		}
		c.enter(e, q.Name)
		return true, c.optReply(opt, nbdwire.RepAck, "")

	case nbdwire.OptStructuredReply:
		if len(data) != 0 {
			return false, c.optReply(opt, nbdwire.RepErrInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data")
		}
		if c.extended {
			return false, c.optReply(opt, nbdwire.RepErrExtHeaderReqd, "extended headers already negotiated")
		}
		c.structured = true
		return false, c.optReply(opt, nbdwire.RepAck, "")

	case nbdwire.OptExtendedHeaders:
		if len(data) != 0 {
			return false, c.optReply(opt, nbdwire.RepErrInvalid, "NBD_OPT_EXTENDED_HEADERS takes no data")
		}
		c.extended, c.structured = true, true
		return false, c.optReply(opt, nbdwire.RepAck, "")

	case nbdwire.OptListMetaContext, nbdwire.OptSetMetaContext:
		return false, c.metaContext(opt, data)
	}
	return false, c.optReply(opt, nbdwire.RepErrUnsup, fmt.Sprintf("option %d not supported", opt))
}

// metaContext answers LIST_META_CONTEXT and SET_META_CONTEXT.
func (c *conn) metaContext(opt uint32, data []byte) error {
	set := opt == nbdwire.OptSetMetaContext
	if set {
		// Replaced even when the option fails.
		c.meta, c.metaExport = nil, ""
	}
	if !c.structured {
		return c.optReply(opt, nbdwire.RepErrInvalid, "negotiate structured replies first")
	}
	q, err := nbdwire.DecodeMetaContextRequest(data)
	if err != nil {
		return c.optReply(opt, nbdwire.RepErrInvalid, err.Error())
	}
	e := c.s.lookup(q.Name)
	if e == nil {
		return c.optReply(opt, nbdwire.RepErrUnknown, fmt.Sprintf("export %q not found", q.Name))
	}
	var ids []uint32
	add := func(id uint32) {
		for _, x := range ids {
			if x == id {
				return
			}
		}
		ids = append(ids, id)
	}
	if len(q.Queries) == 0 && !set {
		add(ctxBaseAllocation)
		if e.AllocationDepth {
			add(ctxAllocDepth)
		}
	}
	for _, s := range q.Queries {
		switch {
		case s == nbdwire.ContextBaseAllocation:
			add(ctxBaseAllocation)
		case s == "base:" && !set:
			add(ctxBaseAllocation)
		case e.AllocationDepth && (s == nbdwire.ContextAllocDepth || (s == "qemu:" && !set)):
			add(ctxAllocDepth)
		case !strings.Contains(s, ":"):
			return c.optReply(opt, nbdwire.RepErrInvalid, fmt.Sprintf("query %q has no namespace", s))
		}
	}
	for _, id := range ids {
		name := nbdwire.ContextBaseAllocation
		if id == ctxAllocDepth {
			name = nbdwire.ContextAllocDepth
		}
		replyID := id
		if !set {
			replyID = 0 // reserved in LIST replies
		}
		c.bw.Write(nbdwire.AppendOptionReply(nil, opt, nbdwire.RepMetaContext, nbdwire.AppendRepMetaContext(nil, replyID, name)))
	}
	if set {
		c.meta, c.metaExport = ids, q.Name
	}
	return c.optReply(opt, nbdwire.RepAck, "")
}

// connFlags are the transmission flags that depend on this connection.
func (c *conn) connFlags() uint16 {
	if c.structured {
		return nbdwire.FlagSendDF
	}
	return 0
}

// enter selects the export for transmission.
func (c *conn) enter(e *Export, name string) {
	c.exp = e
	c.flags = e.flags | c.connFlags()
	if c.metaExport != name {
		c.meta = nil
	}
}

// info queues one NBD_REP_INFO.
func (c *conn) info(opt uint32, payload []byte) {
	c.bw.Write(nbdwire.AppendOptionReply(nil, opt, nbdwire.RepInfo, payload))
}

// optReply sends a final option reply (an error carries msg) and flushes.
func (c *conn) optReply(opt, typ uint32, msg string) error {
	var data []byte
	if nbdwire.IsRepError(typ) && msg != "" {
		if len(msg) > nbdwire.MaxStringLength {
			msg = msg[:nbdwire.MaxStringLength]
		}
		data = []byte(msg)
	}
	c.bw.Write(nbdwire.AppendOptionReply(nil, opt, typ, data))
	return c.bw.Flush()
}

func be32(p []byte) uint32 {
	return uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
}
