package nbd

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/thinblk/thinblk/internal/nbdwire"
)

// maxOptionReply bounds an option reply's data the client accepts.
const maxOptionReply = 1 << 20

// handshake negotiates on c.conn and fills the export fields of c.
func (c *Client) handshake(t Target, o Options) error {
	var hello [nbdwire.ServerHelloSize]byte
	if _, err := io.ReadFull(c.br, hello[:]); err != nil {
		return fmt.Errorf("reading greeting: %w", err)
	}
	hflags, err := nbdwire.DecodeServerHello(hello[:])
	if err != nil {
		return err
	}
	if hflags&nbdwire.FlagFixedNewstyle == 0 {
		return errors.New("server does not speak fixed newstyle")
	}
	cflags := nbdwire.FlagCFixedNewstyle
	noZeroes := hflags&nbdwire.FlagNoZeroes != 0
	if noZeroes {
		cflags |= nbdwire.FlagCNoZeroes
	}
	c.bw.Write(be.AppendUint32(nil, cflags))
	if err := c.bw.Flush(); err != nil {
		return err
	}

	if t.TLS || o.TLSConfig != nil {
		cfg := o.TLSConfig
		if cfg == nil {
			if cfg, err = t.tlsConfig(); err != nil {
				return err
			}
		}
		if _, err := c.option(nbdwire.OptStartTLS, nil, nil); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
		tc := tls.Client(c.conn, cfg)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		c.conn = tc
		c.br = bufio.NewReaderSize(tc, 256<<10)
		c.bw = bufio.NewWriterSize(tc, 256<<10)
	}

	if !o.NoExtendedHeaders {
		if _, err := c.option(nbdwire.OptExtendedHeaders, nil, nil); err == nil {
			c.extended, c.structured = true, true
		} else if !isOptionError(err) {
			return err
		}
	}
	if !c.structured {
		if _, err := c.option(nbdwire.OptStructuredReply, nil, nil); err == nil {
			c.structured = true
		} else if !isOptionError(err) {
			return err
		}
	}
	if c.structured {
		q := nbdwire.MetaContextRequest{Name: t.Export, Queries: []string{nbdwire.ContextBaseAllocation}}
		_, err := c.option(nbdwire.OptSetMetaContext, nbdwire.AppendMetaContextRequest(nil, q), func(typ uint32, data []byte) error {
			if typ != nbdwire.RepMetaContext {
				return nil
			}
			id, name, err := nbdwire.DecodeRepMetaContext(data)
			if err != nil {
				return err
			}
			if name == nbdwire.ContextBaseAllocation {
				c.baseID, c.hasBase = id, true
			}
			return nil
		})
		if err != nil && !isOptionError(err) {
			return err
		}
	}

	gotExport := false
	q := nbdwire.InfoRequest{Name: t.Export, Infos: []uint16{nbdwire.InfoBlockSize}}
	_, err = c.option(nbdwire.OptGo, nbdwire.AppendInfoRequest(nil, q), func(typ uint32, data []byte) error {
		if typ != nbdwire.RepInfo {
			return nil
		}
		in, err := nbdwire.DecodeInfo(data)
		if err != nil {
			return err
		}
		switch in.Type {
		case nbdwire.InfoExport:
			c.size, c.flags, gotExport = int64(in.Size), in.Flags, true
		case nbdwire.InfoBlockSize:
			c.minBlk, c.prefBlk, c.maxPay = in.MinBlock, in.PrefBlock, in.MaxPayload
		}
		return nil
	})
	var oe *nbdwire.OptionError
	switch {
	case err == nil:
		if !gotExport {
			return errors.New("server sent no NBD_INFO_EXPORT")
		}
	case errors.As(err, &oe) && oe.Type == nbdwire.RepErrUnsup && !c.extended:
		// An old server: NBD_OPT_EXPORT_NAME cannot report errors.
		c.bw.Write(nbdwire.AppendOption(nil, nbdwire.OptExportName, []byte(t.Export)))
		if err := c.bw.Flush(); err != nil {
			return err
		}
		p := make([]byte, nbdwire.ExportNameReplySize(noZeroes))
		if _, err := io.ReadFull(c.br, p); err != nil {
			return fmt.Errorf("export %q refused: %w", t.Export, err)
		}
		size, flags, _ := nbdwire.DecodeExportNameReply(p)
		c.size, c.flags = int64(size), flags
	default:
		return err
	}
	if c.size < 0 {
		return fmt.Errorf("export size %d too large", uint64(c.size))
	}
	if c.minBlk == 0 {
		c.minBlk = 1
	}
	if c.prefBlk == 0 {
		c.prefBlk = 4096
	}
	if c.maxPay == 0 || c.maxPay > nbdwire.DefaultMaxPayload {
		c.maxPay = nbdwire.DefaultMaxPayload
	}
	c.maxPay = max(c.maxPay/c.minBlk*c.minBlk, c.minBlk)
	if c.flags&nbdwire.FlagHasFlags == 0 {
		c.flags = nbdwire.FlagHasFlags
	}
	return nil
}

func isOptionError(err error) bool {
	var oe *nbdwire.OptionError
	return errors.As(err, &oe)
}

// option sends one option and reads replies until the final one; each
// non-final reply goes to each (which may be nil). The final reply's type
// is returned; an error reply becomes *nbdwire.OptionError.
func (c *Client) option(opt uint32, data []byte, each func(typ uint32, data []byte) error) (uint32, error) {
	c.bw.Write(nbdwire.AppendOption(nil, opt, data))
	if err := c.bw.Flush(); err != nil {
		return 0, err
	}
	var hdr [nbdwire.OptionReplyHeaderSize]byte
	for {
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return 0, fmt.Errorf("reading reply to option %d: %w", opt, err)
		}
		h, err := nbdwire.DecodeOptionReplyHeader(hdr[:])
		if err != nil {
			return 0, err
		}
		if h.Option != opt {
			return 0, fmt.Errorf("%w: reply to option %d while waiting for %d", nbdwire.ErrMalformed, h.Option, opt)
		}
		if h.Length > maxOptionReply {
			return 0, fmt.Errorf("%w: option reply of %d bytes", nbdwire.ErrMalformed, h.Length)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, p); err != nil {
			return 0, err
		}
		if nbdwire.IsRepError(h.Type) {
			return h.Type, &nbdwire.OptionError{Option: opt, Type: h.Type, Message: string(p)}
		}
		if h.Type == nbdwire.RepAck {
			return h.Type, nil
		}
		if each != nil {
			if err := each(h.Type, p); err != nil {
				return 0, err
			}
		}
	}
}

// dial connects to t.
func dial(t Target) (net.Conn, error) {
	return net.Dial(t.Network, t.Address)
}
