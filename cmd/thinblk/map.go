package main

import (
	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func init() {
	var (
		o                tool.MapOptions
		start, maxLength string
	)
	c := &cobra.Command{
		Use:   "map [-f FMT] [--output=human|json] [--start-offset=OFF] [--max-length=LEN] [-U] FILE",
		Short: "print the allocation map of an image and its backing chain (qemu-img map)",
		Args:  rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			var err error
			if o.Start, err = tool.ParseSize(start); err != nil {
				return err
			}
			o.MaxLength = -1
			if maxLength != "" {
				if o.MaxLength, err = tool.ParseSize(maxLength); err != nil {
					return err
				}
			}
			return tool.Map(c.OutOrStdout(), args[0], o)
		},
	}
	f := c.Flags()
	f.StringVarP(&o.Format, "format", "f", "", "image format (default: probe)")
	f.StringVar(&o.Output, "output", "human", "output format: human or json")
	f.StringVarP(&start, "start-offset", "s", "0", "first byte to map")
	f.StringVarP(&maxLength, "max-length", "l", "", "map at most this many bytes")
	f.BoolVarP(&o.ForceShare, "force-share", "U", false, "open the image although another process writes it (read-only)")
	rootCmd.AddCommand(c)
}
