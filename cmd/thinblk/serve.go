package main

import (
	"context"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func init() {
	var (
		o      tool.ServeOptions
		tlsDir string
	)
	c := &cobra.Command{
		Use:   "serve [--disk NAME=PATH[,format=F][,discard=ignore|unmap]...] [--listen ADDR] [--data-dir DIR]",
		Short: "run the thinblk daemon: export disks over NBD with sane defaults",
		Long: `Export disks over NBD until SIGTERM/SIGINT.

With no --disk, creates (once) DATA-DIR/disk0.qcow2, a thin 16 GiB qcow2,
and serves it as nbd://127.0.0.1:10809/disk0 with discard=unmap, and as
LUN 0 of iSCSI target iqn.2026-01.io.thinblk:disk0 on 127.0.0.1:3260
(when that port is free).

--disk NAME=PATH[,format=F][,discard=ignore|unmap][,detect-zeroes=off|on|unmap]
       [,readonly=on][,allocation-depth=on]   (repeatable; discard defaults to ignore)`,
		Args: rangeArgs(0, 0),
		RunE: func(c *cobra.Command, args []string) error {
			if tlsDir != "" {
				o.TLSCert, o.TLSKey, o.TLSCA = tool.TLSFilesFromDir(tlsDir)
			}
			o.Logger = slog.New(slog.NewTextHandler(c.ErrOrStderr(), nil))
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return tool.Serve(ctx, c.OutOrStdout(), o)
		},
	}
	f := c.Flags()
	f.StringArrayVar(&o.Disks, "disk", nil, "a disk to export: NAME=PATH[,format=F][,discard=...] (repeatable)")
	f.StringVar(&o.Listen, "listen", "127.0.0.1:10809", "address to listen on: HOST:PORT or unix:PATH")
	f.StringVar(&o.DataDir, "data-dir", "thinblk-data", "folder of the default disk")
	f.StringVar(&o.ISCSI, "iscsi", "127.0.0.1:3260", "iSCSI portal address next to NBD (off: none); each disk is a target with LUN 0")
	f.StringVar(&o.ISCSIPrefix, "iscsi-prefix", "iqn.2026-01.io.thinblk:", "target name prefix (the disk name follows)")
	f.StringVar(&o.TLSCert, "tls-cert", "", "server certificate (PEM); with --tls-key makes TLS mandatory")
	f.StringVar(&o.TLSKey, "tls-key", "", "server private key (PEM)")
	f.StringVar(&o.TLSCA, "tls-ca", "", "CA bundle (PEM): require client certificates signed by it")
	f.StringVar(&tlsDir, "tls-dir", "", "qemu-style x509 folder: server-cert.pem, server-key.pem and (client certificates required) ca-cert.pem")
	f.IntVar(&o.Workers, "workers", 4, "requests one connection runs at once")
	rootCmd.AddCommand(c)
}
