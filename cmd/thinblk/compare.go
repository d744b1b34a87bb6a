package main

import (
	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func init() {
	var o tool.CompareOptions
	c := &cobra.Command{
		Use:   "compare [-f FMT] [-F FMT] [-s] [-q] [-T CACHE] [-U] IMAGE1 IMAGE2",
		Short: "compare the content of two images",
		Long: `Compare what a guest would read from IMAGE1 and IMAGE2, as qemu-img compare
does. Exit status 0: identical; 1: different (the first differing offset is
printed); 2: error. With -s (strict) images of different sizes, or a range
allocated in one and not in the other, are different too.`,
		Args: rangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			return tool.Compare(c.OutOrStdout(), args[0], args[1], o)
		},
	}
	f := c.Flags()
	f.StringVarP(&o.FormatA, "a-format", "f", "", "format of IMAGE1 (default: probe)")
	f.StringVarP(&o.FormatB, "b-format", "F", "", "format of IMAGE2 (default: probe)")
	f.BoolVarP(&o.Strict, "strict", "s", false, "strict mode: sizes and allocation must match too")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print nothing; the exit status tells")
	f.StringVarP(&o.Cache, "source-cache", "T", "writeback", "cache mode of both images")
	f.BoolVarP(&o.ForceShare, "force-share", "U", false, "open the image although another process writes it (read-only)")
	rootCmd.AddCommand(c)
}
