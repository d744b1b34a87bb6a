package tool

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/export/iscsi"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/file"
	"github.com/thinblk/thinblk/scsi"
)

// DefaultISCSIPortal and DefaultISCSITarget are `thinblk iscsi`'s defaults.
const (
	DefaultISCSIPortal = "127.0.0.1:3260"
	DefaultISCSITarget = "iqn.2026-01.io.thinblk:target"
)

// ISCSIOptions are the flags of `thinblk iscsi`.
type ISCSIOptions struct {
	// Portal is the TCP address to listen on (default 127.0.0.1:3260).
	Portal string
	// Target is the target's IQN.
	Target string
	// LUNs are the images, LUN 0 first. Each is "IMAGE" or "FMT:IMAGE"
	// where FMT is a registered format name.
	LUNs []string
	// Format is the format of LUNs without their own ("" probes).
	Format string
	// Discard is "ignore" (default: UNMAP is accepted and does nothing)
	// or "unmap" (UNMAP deallocates).
	Discard string
	// LBPRZ advertises that unmapped blocks read as zeros; refused when an
	// image cannot deallocate and zero.
	LBPRZ bool
	// Anchor enables anchored blocks (ANC_SUP, ANCHOR).
	Anchor bool
	// ReadOnly (-r) exports every LUN write-protected.
	ReadOnly bool
	// BlockSize is the logical block size: 512 (default) or 4096.
	BlockSize int
	// Cache is the image cache mode (writeback, none, ...).
	Cache string
	// CHAP credentials: User/Secret for one-way CHAP, plus
	// MutualUser/MutualSecret for mutual CHAP.
	CHAPUser, CHAPSecret, MutualUser, MutualSecret string
	// Logger receives session events; nil means slog.Default.
	Logger *slog.Logger
	// Ready, when set, is called with the listening address once the
	// portal accepts connections.
	Ready func(net.Addr)
}

// ISCSI serves the images as LUNs of one iSCSI target until ctx is done,
// then shuts down (waiting up to 5 s for sessions) and closes the images
// after flushing them.
func ISCSI(ctx context.Context, o ISCSIOptions) error {
	if len(o.LUNs) == 0 {
		return errors.New("iscsi: no image to serve (give --lun IMAGE)")
	}
	if o.Portal == "" {
		o.Portal = DefaultISCSIPortal
	}
	if o.Target == "" {
		o.Target = DefaultISCSITarget
	}
	if o.Discard != "" {
		if _, err := block.ParseDiscardMode(o.Discard); err != nil {
			return fmt.Errorf("iscsi: --discard: %w", err)
		}
	}
	chap, err := chapFromOptions(o)
	if err != nil {
		return err
	}
	var nodes []block.Driver
	var names []string
	defer func() {
		for _, d := range nodes {
			if !o.ReadOnly {
				d.Flush()
			}
			d.Close()
		}
	}()
	for _, spec := range o.LUNs {
		format, name := splitLUNSpec(spec, o.Format)
		// The node passes discards down; the LU applies --discard, so
		// that LBPRZ is judged on what the storage can do.
		d, err := image.Open(name, image.Options{Format: format, ReadOnly: o.ReadOnly, Cache: o.Cache, Discard: "unmap",
			Unshare: file.PermResize}) // an export: its size is fixed, as qemu-nbd's
		if err != nil {
			return err
		}
		nodes = append(nodes, d)
		names = append(names, name)
	}
	luns, err := ISCSILUNs(nodes, names, o)
	if err != nil {
		return err
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	srv := &iscsi.Server{
		Targets: []*iscsi.Target{{Name: o.Target, LUNs: luns}},
		CHAP:    chap,
		Logger:  logger,
	}
	if err := srv.Validate(); err != nil {
		return err
	}
	l, err := net.Listen("tcp", o.Portal)
	if err != nil {
		return fmt.Errorf("iscsi: %w", err)
	}
	logger.Info("iscsi target ready", "portal", l.Addr().String(), "target", o.Target, "luns", len(o.LUNs))
	if o.Ready != nil {
		o.Ready(l.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, iscsi.ErrServerClosed) {
		return err
	}
	return nil
}

// ISCSILUNs makes the logical units of one target over opened nodes, LUN 0
// first, with the SCSI settings of o (BlockSize, LBPRZ, Anchor, Discard,
// ReadOnly); names[i] (the image's name) derives LUN i's serial number.
// The nodes should pass discards down (image.Options.Discard "unmap"): the
// LUs apply o.Discard themselves. `thinblk serve` uses it for its portal.
func ISCSILUNs(nodes []block.Driver, names []string, o ISCSIOptions) (*scsi.Target, error) {
	mode := block.DiscardIgnore
	if o.Discard != "" {
		var err error
		if mode, err = block.ParseDiscardMode(o.Discard); err != nil {
			return nil, fmt.Errorf("iscsi: --discard: %w", err)
		}
	}
	luns := scsi.NewTarget()
	for i, d := range nodes {
		lu, err := scsi.New(d, scsi.Config{
			BlockSize: o.BlockSize,
			LBPRZ:     o.LBPRZ,
			Anchor:    o.Anchor,
			Discard:   mode,
			ReadOnly:  o.ReadOnly,
			Serial:    serialFor(names[i]),
		})
		if err != nil {
			return nil, fmt.Errorf("iscsi: LUN %d (%s): %w", i, names[i], err)
		}
		luns.Add(uint64(i), lu)
	}
	return luns, nil
}

// splitLUNSpec splits "FMT:IMAGE" when FMT is a registered format.
func splitLUNSpec(spec, def string) (format, name string) {
	if f, rest, ok := strings.Cut(spec, ":"); ok && !strings.Contains(f, "/") {
		if _, known := image.Lookup(f); known {
			return f, rest
		}
	}
	return def, spec
}

// serialFor derives a stable unit serial number from the image's path.
func serialFor(name string) string {
	if abs, err := filepath.Abs(name); err == nil {
		name = abs
	}
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:8])
}

func chapFromOptions(o ISCSIOptions) (*iscsi.CHAP, error) {
	if o.CHAPUser == "" && o.CHAPSecret == "" {
		if o.MutualUser != "" || o.MutualSecret != "" {
			return nil, errors.New("iscsi: mutual CHAP needs --chap-user and --chap-secret too")
		}
		return nil, nil
	}
	if o.CHAPUser == "" || o.CHAPSecret == "" {
		return nil, errors.New("iscsi: --chap-user and --chap-secret go together")
	}
	if (o.MutualUser == "") != (o.MutualSecret == "") {
		return nil, errors.New("iscsi: --chap-mutual-user and --chap-mutual-secret go together")
	}
	if o.MutualSecret != "" && o.MutualSecret == o.CHAPSecret {
		return nil, errors.New("iscsi: the mutual CHAP secret must differ from the initiator's")
	}
	return &iscsi.CHAP{User: o.CHAPUser, Secret: o.CHAPSecret, MutualUser: o.MutualUser, MutualSecret: o.MutualSecret}, nil
}
