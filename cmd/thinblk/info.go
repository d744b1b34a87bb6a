package main

import (
	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func init() {
	var o tool.InfoOptions
	c := &cobra.Command{
		Use:   "info [-f FMT] [--output=human|json] [--backing-chain] [-U] FILE",
		Short: "describe an image (qemu-img info)",
		Args:  rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			return tool.Info(c.OutOrStdout(), args[0], o)
		},
	}
	f := c.Flags()
	f.StringVarP(&o.Format, "format", "f", "", "image format (default: probe)")
	f.StringVar(&o.Output, "output", "human", "output format: human or json")
	f.BoolVar(&o.BackingChain, "backing-chain", false, "describe every image of the backing chain")
	f.BoolVarP(&o.ForceShare, "force-share", "U", false, "open the image although another process writes it (read-only)")
	rootCmd.AddCommand(c)
}
