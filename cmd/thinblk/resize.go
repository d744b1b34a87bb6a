package main

import (
	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func init() {
	var o tool.ResizeOptions
	c := &cobra.Command{
		Use:   "resize [-f FMT] [--shrink [--allow-data-loss]] [-q] FILE [+|-]SIZE",
		Short: "change the virtual size of an image (qemu-img resize)",
		Args:  rangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			return tool.Resize(c.OutOrStdout(), args[0], args[1], o)
		},
	}
	f := c.Flags()
	f.StringVarP(&o.Format, "format", "f", "", "image format (default: probe)")
	f.BoolVar(&o.Shrink, "shrink", false, "allow shrinking the image")
	f.BoolVar(&o.AllowDataLoss, "allow-data-loss", false, "with --shrink, drop allocated data past the new end")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print nothing on success")
	rootCmd.AddCommand(c)
}
