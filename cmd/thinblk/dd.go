package main

import (
	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func init() {
	var o tool.DDOptions
	c := &cobra.Command{
		Use:   "dd [-f FMT] [-O FMT] [-U] [bs=SIZE] [count=BLOCKS] [skip=BLOCKS] if=INPUT of=OUTPUT",
		Short: "copy part of an image into a new image, sparsely",
		Long: `Copy count= blocks of bs= bytes (default 512), after skipping skip= blocks,
from the image if= into a new image of= (created with that size), as qemu-img
dd does. Holes and zeros of the input stay holes in the output.`,
		RunE: func(c *cobra.Command, args []string) error {
			if err := tool.ParseDDOperands(args, &o); err != nil {
				return err
			}
			return tool.DD(o)
		},
	}
	f := c.Flags()
	f.StringVarP(&o.Format, "format", "f", "", "input format (default: probe)")
	f.StringVarP(&o.OutFormat, "output-format", "O", "raw", "output format")
	f.BoolVarP(&o.ForceShare, "force-share", "U", false, "open the image although another process writes it (read-only)")
	rootCmd.AddCommand(c)
}
