package main

import (
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func init() {
	var o tool.ISCSIOptions
	c := &cobra.Command{
		Use:   "iscsi [flags] --lun [FMT:]IMAGE [--lun ...] [IMAGE...]",
		Short: "serve images as LUNs of an iSCSI target",
		Long: `Serve images as the LUNs of one iSCSI target (RFC 7143), LUN 0 first.

Each --lun (or extra argument) names an image, optionally prefixed with its
format ("qcow2:disk.img"); -f sets the format of the others. UNMAP does
nothing unless --discard=unmap. --lbprz promises that unmapped blocks read as
zeros and is refused when an image cannot deallocate and zero.`,
		RunE: func(c *cobra.Command, args []string) error {
			o.LUNs = append(o.LUNs, args...)
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return tool.ISCSI(ctx, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.Portal, "portal", tool.DefaultISCSIPortal, "TCP address to listen on")
	f.StringVar(&o.Target, "target", tool.DefaultISCSITarget, "target IQN")
	f.StringArrayVar(&o.LUNs, "lun", nil, "image to serve as the next LUN, [FMT:]IMAGE (repeatable)")
	f.StringVarP(&o.Format, "format", "f", "", "image format of LUNs without one (default: probe)")
	f.StringVar(&o.Discard, "discard", "ignore", "what UNMAP does: ignore or unmap")
	f.BoolVar(&o.LBPRZ, "lbprz", false, "advertise that unmapped blocks read as zeros")
	f.BoolVar(&o.Anchor, "anchor", false, "support anchored blocks (ANC_SUP, ANCHOR)")
	f.BoolVarP(&o.ReadOnly, "read-only", "r", false, "export write-protected")
	f.IntVar(&o.BlockSize, "block-size", 512, "logical block size: 512 or 4096")
	f.StringVarP(&o.Cache, "cache", "t", "", "cache mode: writeback, none, writethrough, directsync, unsafe")
	f.StringVar(&o.CHAPUser, "chap-user", "", "CHAP user name the initiator must present")
	f.StringVar(&o.CHAPSecret, "chap-secret", "", "CHAP secret of that user")
	f.StringVar(&o.MutualUser, "chap-mutual-user", "", "CHAP user name the target presents (mutual CHAP)")
	f.StringVar(&o.MutualSecret, "chap-mutual-secret", "", "CHAP secret the target presents (mutual CHAP)")
	rootCmd.AddCommand(c)
}
