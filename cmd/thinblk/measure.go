package main

import (
	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func init() {
	var (
		o        tool.MeasureOptions
		optFlags []string
		size     string
	)
	c := &cobra.Command{
		Use:   "measure [--output=human|json] [-O FMT] [-o OPTS] [--size N | [-f FMT] [-l SNAPSHOT] [-U] FILE]",
		Short: "compute the file size an image needs in a format",
		Long: `Print the file size needed to convert FILE (or to create an empty image of
--size N bytes) into format -O: "required size" for the data that exists and
"fully allocated size" with every cluster allocated, as qemu-img measure does.`,
		Args: rangeArgs(0, 1),
		RunE: func(c *cobra.Command, args []string) error {
			var err error
			if o.Options, err = parseOptionFlags(optFlags); err != nil {
				return err
			}
			o.Size = -1
			if c.Flags().Changed("size") {
				if o.Size, err = tool.ParseSize(size); err != nil {
					return err
				}
			}
			if len(args) == 1 {
				o.File = args[0]
			}
			return tool.Measure(c.OutOrStdout(), o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.Output, "output", "human", "output format: human or json")
	f.StringVarP(&o.OutFormat, "output-format", "O", "raw", "target format")
	f.StringArrayVarP(&optFlags, "options", "o", nil, "target creation options, key=value[,key=value...]")
	f.StringVar(&size, "size", "", "measure a new empty image of this size")
	f.StringVarP(&o.Format, "format", "f", "", "format of FILE (default: probe)")
	f.StringVarP(&o.Snapshot, "snapshot", "l", "", "internal snapshot (not supported)")
	f.BoolVarP(&o.ForceShare, "force-share", "U", false, "open the image although another process writes it (read-only)")
	rootCmd.AddCommand(c)
}
