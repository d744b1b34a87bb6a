package tool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/thinblk/thinblk/block"
	nbdserver "github.com/thinblk/thinblk/export/nbd"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/file"
)

// NBDOptions are the flags of `thinblk nbd` (qemu-nbd's names).
type NBDOptions struct {
	Format     string // -f; "" probes
	ReadOnly   bool   // -r
	Persistent bool   // -t: keep serving after the last client leaves
	Socket     string // -k: a unix socket path (instead of TCP)
	Port       int    // -p (default 10809)
	Bind       string // -b (default 127.0.0.1)
	ExportName string // -x (default "")
	// Description (-D) is shown by NBD_OPT_LIST and nbdinfo.
	Description string
	// Shared (-e) is the number of clients served at once (qemu-nbd's
	// default is 1; 0 means no limit). Above 1 multi-conn is advertised.
	Shared int
	// Discard is "ignore" (default) or "unmap"; DetectZeroes "off"
	// (default), "on" or "unmap".
	Discard      string
	DetectZeroes string
	// AllocationDepth (-A) offers the qemu:allocation-depth context.
	AllocationDepth bool
	// Cache is qemu's cache mode (writeback, none, writethrough,
	// directsync, unsafe).
	Cache string
	// PIDFile gets the server's process id once it listens.
	PIDFile string
	// TLSCert and TLSKey (PEM) make TLS mandatory; TLSCA additionally
	// requires client certificates signed by that CA.
	TLSCert, TLSKey, TLSCA string
	// Workers is the number of requests one connection runs at once.
	Workers int
	// Snapshot (-l, --load-snapshot) exports an internal snapshot of a
	// qcow2 image, read-only: "ID_OR_NAME" or
	// "snapshot.id=ID,snapshot.name=NAME", as qemu-nbd -l.
	Snapshot string
	// Logger receives connection events (nil: slog.Default()).
	Logger *slog.Logger
	// Ready is called with the listening address once clients may
	// connect (used by --fork and by tests).
	Ready func(addr net.Addr)
}

// NBD serves one image over NBD until ctx ends (SIGTERM/SIGINT in the
// command) or, without Persistent, until the first client has come and
// gone. On the way out every connection finishes its requests, the image is
// flushed (every acknowledged write is durable) and closed.
func NBD(ctx context.Context, name string, o NBDOptions) error {
	mode, err := block.ParseDiscardMode(orDefault(o.Discard, "ignore"))
	if err != nil {
		return err
	}
	if _, err := block.ParseDetectZeroes(orDefault(o.DetectZeroes, "off")); err != nil {
		return err
	}
	tlsCfg, err := loadServerTLS(o.TLSCert, o.TLSKey, o.TLSCA)
	if err != nil {
		return err
	}
	snapOpts, err := snapshotOptions(o.Snapshot)
	if err != nil {
		return err
	}
	if snapOpts != nil {
		o.ReadOnly = true // a snapshot is exported read-only, as by qemu-nbd
	}
	node, err := image.Open(name, image.Options{
		Format:       o.Format,
		ReadOnly:     o.ReadOnly,
		Options:      snapOpts,
		Cache:        o.Cache,
		Discard:      mode.String(),
		DetectZeroes: o.DetectZeroes,
		// An export's size is fixed: refuse resize to others, as
		// qemu-nbd does (besides the locks of the image's format).
		Unshare: file.PermResize,
	})
	if err != nil {
		return err
	}
	l, err := listen(o.Socket, o.Bind, o.Port)
	if err != nil {
		node.Close()
		return err
	}
	exp := &nbdserver.Export{
		Name:            o.ExportName,
		Description:     o.Description,
		Node:            node,
		ReadOnly:        o.ReadOnly,
		Discard:         mode,
		AllocationDepth: o.AllocationDepth,
		MultiConn:       o.Shared != 1,
	}
	s := &nbdserver.Server{
		Exports:        map[string]*nbdserver.Export{o.ExportName: exp},
		TLSConfig:      tlsCfg,
		Logger:         o.Logger,
		Workers:        o.Workers,
		MaxConnections: o.Shared,
		OneShot:        !o.Persistent,
	}
	if o.PIDFile != "" {
		if err := os.WriteFile(o.PIDFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			l.Close()
			node.Close()
			return fmt.Errorf("pid file: %w", err)
		}
		defer os.Remove(o.PIDFile)
	}
	return runServer(ctx, s, []net.Listener{l}, []block.Driver{node}, o.Ready)
}

// runServer serves s on ls until ctx ends or s stops by itself, then shuts
// it down (flushing every export), runs the stop functions of other
// services over the same nodes (nil ones are skipped), flushes and closes
// the nodes.
func runServer(ctx context.Context, s *nbdserver.Server, ls []net.Listener, nodes []block.Driver, ready func(net.Addr), stops ...func()) error {
	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() { errc <- s.Serve(l) }()
	}
	if ready != nil {
		for _, l := range ls {
			ready(l.Addr())
		}
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		if errors.Is(serveErr, nbdserver.ErrServerClosed) {
			serveErr = nil
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.Shutdown(sctx)
	for _, stop := range stops {
		if stop != nil {
			stop()
		}
	}
	for _, n := range nodes {
		if n.Caps().Write {
			if ferr := n.Flush(); ferr != nil && err == nil {
				err = ferr
			}
		}
		if cerr := n.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if serveErr != nil {
		return serveErr
	}
	return err
}

// listen opens a unix socket when socket is set, else TCP on bind:port.
func listen(socket, bind string, port int) (net.Listener, error) {
	if socket != "" {
		if fi, err := os.Lstat(socket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			// A stale socket from a previous run (qemu-nbd replaces it too).
			os.Remove(socket)
		}
		return net.Listen("unix", socket)
	}
	if bind == "" {
		bind = "127.0.0.1"
	}
	if port == 0 {
		port = 10809
	}
	return net.Listen("tcp", net.JoinHostPort(bind, strconv.Itoa(port)))
}

func loadServerTLS(cert, key, ca string) (*tls.Config, error) {
	if cert == "" && key == "" && ca == "" {
		return nil, nil
	}
	if cert == "" || key == "" {
		return nil, fmt.Errorf("%w: TLS needs both --tls-cert and --tls-key", block.ErrInvalid)
	}
	return nbdserver.LoadTLSConfig(cert, key, ca)
}

// TLSFilesFromDir names the PEM files of a qemu-style x509 credentials
// folder (qemu's tls-creds-x509 dir=): server-cert.pem, server-key.pem,
// and ca-cert.pem when present (then client certificates are required, as
// with qemu's default verify-peer=on).
func TLSFilesFromDir(dir string) (cert, key, ca string) {
	cert, key = filepath.Join(dir, "server-cert.pem"), filepath.Join(dir, "server-key.pem")
	if _, err := os.Stat(filepath.Join(dir, "ca-cert.pem")); err == nil {
		ca = filepath.Join(dir, "ca-cert.pem")
	}
	return cert, key, ca
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
