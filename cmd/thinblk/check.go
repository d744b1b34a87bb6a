package main

import (
	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func init() {
	var o tool.CheckOptions
	c := &cobra.Command{
		Use:   "check [-f FMT] [-r leaks|all] [--output=human|json] [-U] FILE",
		Short: "check an image for consistency and repair it (qemu-img check)",
		Args:  rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			return tool.Check(c.OutOrStdout(), args[0], o)
		},
	}
	f := c.Flags()
	f.StringVarP(&o.Format, "format", "f", "", "image format (default: probe)")
	f.StringVar(&o.Output, "output", "human", "output format: human or json")
	f.StringVarP(&o.Repair, "repair", "r", "", "repair: leaks or all")
	f.BoolVarP(&o.ForceShare, "force-share", "U", false, "open the image although another process writes it (read-only)")
	rootCmd.AddCommand(c)
}
