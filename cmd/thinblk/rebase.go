package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func init() {
	var o tool.RebaseOptions
	c := &cobra.Command{
		Use:   "rebase [-f FMT] [-t CACHE] [-T CACHE] [-p] [-q] [-u] -b BACKING [-F FMT] FILE",
		Short: "change the backing file of an image",
		Long: `Make BACKING the backing file of FILE (-b "" removes it), as qemu-img rebase
does. In safe mode FILE keeps reading the same: where FILE does not store a
range itself and the old and new backing files differ, the old content is
copied into FILE (only what differs). -u only changes the recorded name.`,
		Args: rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			if !c.Flags().Changed("backing") {
				return &usageError{cmd: c.CommandPath(), err: errors.New("rebase needs -b BACKING (\"\" for none)")}
			}
			return tool.Rebase(c.OutOrStdout(), args[0], o)
		},
	}
	f := c.Flags()
	f.StringVarP(&o.Format, "format", "f", "", "format of FILE (default: probe)")
	f.StringVarP(&o.Backing, "backing", "b", "", "new backing file (\"\" for none)")
	f.StringVarP(&o.BackingFormat, "backing-format", "F", "", "format of the new backing file")
	f.BoolVarP(&o.Unsafe, "unsafe", "u", false, "only change the recorded backing file name")
	f.StringVarP(&o.Cache, "cache", "t", "writeback", "cache mode of FILE")
	f.StringVarP(&o.SrcCache, "source-cache", "T", "writeback", "cache mode of the backing files")
	f.BoolVarP(&o.Progress, "progress", "p", false, "show progress")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "quiet")
	f.BoolVarP(&o.ForceShare, "force-share", "U", false, "open the new backing file although another process writes it")
	rootCmd.AddCommand(c)
}
