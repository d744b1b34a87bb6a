package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func init() {
	var (
		o        tool.ConvertOptions
		optFlags []string
		sparse   string
	)
	c := &cobra.Command{
		Use:   "convert [-f FMT] [-O FMT] [-o OPTS] [-c] [-S SIZE] [-m N] [-W] [-n] [--target-is-zero] [-B BACKING [-F FMT]] [-p] [-q] [-t CACHE] [-T CACHE] [-U] [--stats] SRC... DST",
		Short: "copy images into a new (or existing) image, sparsely",
		Long: `Copy the images SRC... (laid end to end) into DST, as qemu-img convert does.
Holes and known-zero ranges of the sources are never read; data is checked for
zeros every -S bytes (default 4k; -S 0 fully allocates DST) and zeros are
skipped on a fresh target or turned into write-zeroes. -B makes DST an overlay
of BACKING and copies only what differs from it.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 2 {
				return &usageError{cmd: c.CommandPath(), err: errors.New("convert needs at least one source and a target")}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			var err error
			if o.Options, err = parseOptionFlags(optFlags); err != nil {
				return err
			}
			if c.Flags().Changed("parallel") && (o.Parallel < 1 || o.Parallel > 64) {
				return &usageError{cmd: c.CommandPath(), err: errors.New("-m: the number of requests in flight must be between 1 and 64")}
			}
			o.SparseSize = -1
			if c.Flags().Changed("sparse-size") {
				if o.SparseSize, err = tool.ParseSize(sparse); err != nil {
					return err
				}
			}
			return tool.Convert(c.OutOrStdout(), c.OutOrStdout(), args[:len(args)-1], args[len(args)-1], o)
		},
	}
	f := c.Flags()
	f.SortFlags = false
	f.StringVarP(&o.SrcFormat, "format", "f", "", "source format (default: probe)")
	f.StringVarP(&o.OutFormat, "output-format", "O", "raw", "target format")
	f.StringArrayVarP(&optFlags, "options", "o", nil, "target creation options, key=value[,key=value...]")
	f.BoolVarP(&o.Compress, "compress", "c", false, "write compressed clusters (qcow2)")
	f.StringVarP(&sparse, "sparse-size", "S", "4k", "zero-detection granularity; 0 fully allocates the target")
	f.IntVarP(&o.Parallel, "parallel", "m", 0, "requests in flight, 1 to 64 (default 4: more only contend on the target file)")
	f.BoolVarP(&o.OutOfOrder, "out-of-order", "W", false, "allow out-of-order writes")
	f.BoolVarP(&o.NoCreate, "no-create", "n", false, "write into an existing target")
	f.BoolVar(&o.TargetIsZero, "target-is-zero", false, "the existing target reads zeros (needs -n)")
	f.StringVarP(&o.Backing, "backing", "B", "", "make the target an overlay of this backing file")
	f.StringVarP(&o.BackingFormat, "backing-format", "F", "", "backing file format")
	f.StringVarP(&o.Snapshot, "snapshot", "l", "", "internal snapshot of the source (not supported)")
	f.BoolVarP(&o.Progress, "progress", "p", false, "show progress")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "quiet")
	f.StringVarP(&o.DstCache, "cache", "t", "unsafe", "target cache mode")
	f.StringVarP(&o.SrcCache, "source-cache", "T", "writeback", "source cache mode")
	f.BoolVarP(&o.ForceShare, "force-share", "U", false, "open the source images although another process writes them")
	f.BoolVar(&o.Stats, "stats", false, "print bytes read, written, zeroed and skipped")
	rootCmd.AddCommand(c)
}
