package tool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/export/iscsi"
	nbdserver "github.com/thinblk/thinblk/export/nbd"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/file"
)

// DefaultDiskSize is the virtual size of the disk `thinblk serve` creates
// when it is given no disks: 16 GiB, thin.
const DefaultDiskSize = 16 << 30

// ServeOptions are the flags of `thinblk serve`.
type ServeOptions struct {
	// Disks are NAME=PATH[,format=F][,discard=ignore|unmap]
	// [,detect-zeroes=off|on|unmap][,readonly=on][,allocation-depth=on].
	// None: DataDir/disk0.qcow2 is created once (thin 16 GiB qcow2) and
	// served as disk0 with discard=unmap.
	Disks []string
	// Listen is host:port (default 127.0.0.1:10809) or unix:PATH.
	Listen string
	// DataDir holds the default disk (default ./thinblk-data).
	DataDir string
	// ISCSI is the address of an iSCSI portal next to NBD ("" or "off":
	// none). Each disk is a target named ISCSIPrefix+NAME with the disk as
	// LUN 0. When the address is in use, serve warns and goes on with NBD
	// only.
	ISCSI string
	// ISCSIPrefix names the targets (default "iqn.2026-01.io.thinblk:").
	ISCSIPrefix string
	// TLSCert, TLSKey, TLSCA as for NBDOptions.
	TLSCert, TLSKey, TLSCA string
	Workers                int
	Logger                 *slog.Logger
	Ready                  func(addr net.Addr)
}

// DiskSpec is one parsed --disk.
type DiskSpec struct {
	Name, Path, Format, Discard, DetectZeroes string
	ReadOnly, AllocationDepth                 bool
}

// ParseDiskSpec parses NAME=PATH[,key=value...]. Discard defaults to
// "ignore" (DESIGN.md rule 1).
func ParseDiskSpec(s string) (DiskSpec, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" || rest == "" {
		return DiskSpec{}, fmt.Errorf("%w: --disk %q: want NAME=PATH[,format=F][,discard=ignore|unmap]...", block.ErrInvalid, s)
	}
	parts := strings.Split(rest, ",")
	d := DiskSpec{Name: name, Path: parts[0], Discard: "ignore", DetectZeroes: "off"}
	for _, kv := range parts[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "format":
			d.Format = v
		case "discard":
			m, err := block.ParseDiscardMode(v)
			if err != nil {
				return DiskSpec{}, fmt.Errorf("--disk %s: %w", name, err)
			}
			d.Discard = m.String()
		case "detect-zeroes":
			z, err := block.ParseDetectZeroes(v)
			if err != nil {
				return DiskSpec{}, fmt.Errorf("--disk %s: %w", name, err)
			}
			d.DetectZeroes = z.String()
		case "readonly", "read-only":
			d.ReadOnly = v == "" || v == "on" || v == "true" || v == "yes"
		case "allocation-depth":
			d.AllocationDepth = v == "" || v == "on" || v == "true" || v == "yes"
		default:
			return DiskSpec{}, fmt.Errorf("%w: --disk %s: unknown option %q", block.ErrInvalid, name, k)
		}
	}
	return d, nil
}

// Serve runs the thinblk daemon: it exports the disks over NBD until ctx
// ends, then flushes and closes them. It prints the URLs and how to attach
// them to w.
func Serve(ctx context.Context, w io.Writer, o ServeOptions) error {
	specs := make([]DiskSpec, 0, len(o.Disks))
	for _, s := range o.Disks {
		d, err := ParseDiskSpec(s)
		if err != nil {
			return err
		}
		specs = append(specs, d)
	}
	if len(specs) == 0 {
		d, err := defaultDisk(w, orDefault(o.DataDir, "thinblk-data"))
		if err != nil {
			return err
		}
		specs = append(specs, d)
	}
	tlsCfg, err := loadServerTLS(o.TLSCert, o.TLSKey, o.TLSCA)
	if err != nil {
		return err
	}
	s := &nbdserver.Server{Exports: map[string]*nbdserver.Export{}, TLSConfig: tlsCfg, Logger: o.Logger, Workers: o.Workers}
	var nodes []block.Driver
	closeAll := func() {
		for _, n := range nodes {
			n.Close()
		}
	}
	for _, d := range specs {
		if _, dup := s.Exports[d.Name]; dup {
			closeAll()
			return fmt.Errorf("%w: disk %q named twice", block.ErrInvalid, d.Name)
		}
		// The node passes discards down; each export (NBD, iSCSI)
		// applies the disk's discard mode itself.
		node, err := image.Open(d.Path, image.Options{Format: d.Format, ReadOnly: d.ReadOnly, Discard: "unmap",
			Unshare: file.PermResize}) // an export: its size is fixed, as qemu-nbd's
		if err != nil {
			closeAll()
			return err
		}
		nodes = append(nodes, node)
		mode, _ := block.ParseDiscardMode(d.Discard)
		dz, _ := block.ParseDetectZeroes(d.DetectZeroes)
		s.Exports[d.Name] = &nbdserver.Export{
			Name: d.Name, Description: d.Path, Node: node, ReadOnly: d.ReadOnly,
			Discard: mode, DetectZeroes: dz, AllocationDepth: d.AllocationDepth, MultiConn: true,
		}
	}
	l, err := listenSpec(orDefault(o.Listen, "127.0.0.1:10809"))
	if err != nil {
		closeAll()
		return err
	}
	printAttach(w, l.Addr(), s, tlsCfg != nil)
	stopISCSI, err := startISCSIPortal(w, o, specs, nodes)
	if err != nil {
		l.Close()
		closeAll()
		return err
	}
	fmt.Fprintf(w, "Stop with Ctrl-C (every acknowledged write is flushed).\n")
	return runServer(ctx, s, []net.Listener{l}, nodes, o.Ready, stopISCSI)
}

// startISCSIPortal serves every disk as LUN 0 of its own target on
// o.ISCSI, and returns the function that stops the portal.
func startISCSIPortal(w io.Writer, o ServeOptions, specs []DiskSpec, nodes []block.Driver) (func(), error) {
	if o.ISCSI == "" || o.ISCSI == "off" {
		return nil, nil
	}
	prefix := orDefault(o.ISCSIPrefix, "iqn.2026-01.io.thinblk:")
	srv := &iscsi.Server{Logger: o.Logger}
	for i, d := range specs {
		luns, err := ISCSILUNs(nodes[i:i+1], []string{d.Path}, ISCSIOptions{Discard: d.Discard, ReadOnly: d.ReadOnly})
		if err != nil {
			return nil, err
		}
		srv.Targets = append(srv.Targets, &iscsi.Target{Name: prefix + d.Name, LUNs: luns})
	}
	if err := srv.Validate(); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", o.ISCSI)
	if errors.Is(err, syscall.EADDRINUSE) {
		fmt.Fprintf(w, "iSCSI portal not started: %s is in use (--iscsi ADDR to pick another, --iscsi off to silence)\n", o.ISCSI)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("iscsi portal: %w", err)
	}
	fmt.Fprintf(w, "iSCSI portal on %s:\n", l.Addr())
	for _, t := range srv.Targets {
		fmt.Fprintf(w, "  iscsi://%s/%s/0\n", l.Addr(), t.Name)
	}
	fmt.Fprintf(w, "  (qemu-img info iscsi://%s/%s/0; iscsiadm -m discovery -t st -p %s)\n", l.Addr(), srv.Targets[0].Name, l.Addr())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, iscsi.ErrServerClosed) {
			o.logger().Error("iscsi portal stopped", "err", err.Error())
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}, nil
}

func (o ServeOptions) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

// defaultDisk creates dir/disk0.qcow2 once and returns its spec.
func defaultDisk(w io.Writer, dir string) (DiskSpec, error) {
	path := filepath.Join(dir, "disk0.qcow2")
	d := DiskSpec{Name: "disk0", Path: path, Format: "qcow2", Discard: "unmap", DetectZeroes: "off", AllocationDepth: true}
	if _, err := os.Stat(path); err == nil {
		return d, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return DiskSpec{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return DiskSpec{}, err
	}
	if err := image.Create(path, "qcow2", image.CreateOptions{Size: DefaultDiskSize}); err != nil {
		return DiskSpec{}, err
	}
	fmt.Fprintf(w, "Created %s (qcow2, 16 GiB, thin)\n", path)
	return d, nil
}

// listenSpec listens on host:port or unix:PATH.
func listenSpec(spec string) (net.Listener, error) {
	if p, ok := strings.CutPrefix(spec, "unix:"); ok {
		return listen(p, "", 0)
	}
	host, port, err := net.SplitHostPort(spec)
	if err != nil {
		return nil, fmt.Errorf("%w: --listen %q: %v", block.ErrInvalid, spec, err)
	}
	return net.Listen("tcp", net.JoinHostPort(host, port))
}

// exportURL is the URL clients use for export name on addr.
func exportURL(addr net.Addr, name string, tls bool) string {
	scheme := "nbd"
	if tls {
		scheme = "nbds"
	}
	if addr.Network() == "unix" {
		return fmt.Sprintf("%s+unix:///%s?socket=%s", scheme, name, addr.String())
	}
	return fmt.Sprintf("%s://%s/%s", scheme, addr.String(), name)
}

func printAttach(w io.Writer, addr net.Addr, s *nbdserver.Server, tls bool) {
	names := make([]string, 0, len(s.Exports))
	for n := range s.Exports {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "thinblk serve: listening on %s\n", addr)
	for _, n := range names {
		e := s.Exports[n]
		u := exportURL(addr, n, tls)
		mode := "read-write"
		if e.ReadOnly {
			mode = "read-only"
		}
		fmt.Fprintf(w, "  %s  (%s, %s, discard=%s)\n", u, e.Description, mode, e.Discard)
	}
	u := exportURL(addr, names[0], tls)
	fmt.Fprintf(w, "Attach with:\n")
	fmt.Fprintf(w, "  qemu-img info %s\n", u)
	fmt.Fprintf(w, "  nbdinfo %s\n", u)
	fmt.Fprintf(w, "  qemu-system-x86_64 ... -drive file=%s,format=raw,if=virtio,discard=unmap\n", u)
}
