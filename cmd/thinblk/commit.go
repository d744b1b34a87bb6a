package main

import (
	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func init() {
	var o tool.CommitOptions
	c := &cobra.Command{
		Use:   "commit [-f FMT] [-t CACHE] [-b BASE] [-d] [-p] [-q] FILE",
		Short: "copy an overlay's changes into its backing file",
		Long: `Write what FILE (and the images between it and BASE) store into BASE (default:
FILE's backing file), as qemu-img commit does. Zero and deallocated clusters
of FILE become zeros in BASE (write-zeroes with unmap), not written bytes.
Without -d, FILE is emptied afterwards when its format can do that.`,
		Args: rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			return tool.Commit(c.OutOrStdout(), c.OutOrStdout(), args[0], o)
		},
	}
	f := c.Flags()
	f.StringVarP(&o.Format, "format", "f", "", "format of FILE (default: probe)")
	f.StringVarP(&o.Cache, "cache", "t", "unsafe", "cache mode of BASE")
	f.StringVarP(&o.Base, "base", "b", "", "image of the backing chain to commit into")
	f.BoolVarP(&o.Drop, "drop", "d", false, "do not empty FILE after the commit")
	f.BoolVarP(&o.Progress, "progress", "p", false, "show progress")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "quiet")
	rootCmd.AddCommand(c)
}
