package main

import (
	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func init() {
	var (
		o        tool.CreateOptions
		optFlags []string
	)
	c := &cobra.Command{
		Use:   "create [-f FMT] [-o OPTIONS] [-b BACKING -F BACKING_FMT] [-q] FILE [SIZE]",
		Short: "create a new image",
		Long: `Create a new image FILE of SIZE bytes (suffixes k, M, G, T, P, E are powers of
1024). Options (-o key=value,...) depend on the format, e.g. raw's
preallocation=off|falloc|full. With -b the size may be left out.`,
		Args: rangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			var err error
			if o.Options, err = parseOptionFlags(optFlags); err != nil {
				return err
			}
			o.Size = -1
			if len(args) == 2 {
				if o.Size, err = tool.ParseSize(args[1]); err != nil {
					return err
				}
			}
			return tool.Create(c.OutOrStdout(), args[0], o)
		},
	}
	f := c.Flags()
	f.StringVarP(&o.Format, "format", "f", "raw", "image format")
	f.StringArrayVarP(&optFlags, "options", "o", nil, "format options, key=value[,key=value...]")
	f.StringVarP(&o.Backing, "backing", "b", "", "backing file")
	f.StringVarP(&o.BackingFormat, "backing-format", "F", "", "backing file format")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print nothing on success")
	rootCmd.AddCommand(c)
}
