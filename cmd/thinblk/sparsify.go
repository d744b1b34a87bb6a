package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func init() {
	var o tool.SparsifyOptions
	c := &cobra.Command{
		Use:   "sparsify [-f FMT] [-q] (--in-place FILE | [-O FMT] [--compress] FILE OUTPUT)",
		Short: "deallocate the ranges of an image that hold only zeros",
		Long: `With --in-place, find the ranges FILE stores as data that read all zeros and
deallocate them (a hole in a raw file, a freed or zero cluster in qcow2); what
FILE reads does not change. Prints the bytes of zeros deallocated and the
bytes reclaimed on the host. Without --in-place, write a compacted copy of
FILE to OUTPUT (optionally compressed).`,
		Args: rangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			out := ""
			if len(args) == 2 {
				out = args[1]
			}
			if !o.InPlace && out == "" {
				return &usageError{cmd: c.CommandPath(), err: errors.New("sparsify needs --in-place or an OUTPUT image")}
			}
			return tool.Sparsify(c.OutOrStdout(), args[0], out, o)
		},
	}
	f := c.Flags()
	f.StringVarP(&o.Format, "format", "f", "", "image format (default: probe)")
	f.BoolVar(&o.InPlace, "in-place", false, "deallocate zeros in FILE itself")
	f.StringVarP(&o.OutFormat, "output-format", "O", "", "format of OUTPUT (default: FILE's)")
	f.BoolVar(&o.Compress, "compress", false, "compress OUTPUT's clusters (qcow2)")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "no summary line")
	rootCmd.AddCommand(c)
}
