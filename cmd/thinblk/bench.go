package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func init() {
	var (
		o                        tool.BenchOptions
		size, step, off, pattern string
		aio                      string
		native                   bool
	)
	c := &cobra.Command{
		Use:   "bench [-c COUNT] [-d DEPTH] [-f FMT] [-s SIZE] [-S STEP] [-o OFFSET] [-w [--pattern=P]] [-t CACHE] [-q] FILE",
		Short: "run a simple I/O benchmark on an image (qemu-img bench)",
		Args:  rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			var err error
			parse := func(s string, dst *int64) {
				if s != "" && err == nil {
					*dst, err = tool.ParseSize(s)
				}
			}
			parse(size, &o.Size)
			parse(step, &o.Step)
			parse(off, &o.Offset)
			if err != nil {
				return err
			}
			if pattern != "" {
				v, perr := strconv.ParseUint(pattern, 0, 8)
				if perr != nil {
					return fmt.Errorf("invalid pattern %q", pattern)
				}
				o.Pattern = byte(v)
			}
			return tool.Bench(c.OutOrStdout(), args[0], o)
		},
	}
	f := c.Flags()
	f.Int64VarP(&o.Count, "count", "c", 75000, "number of requests")
	f.IntVarP(&o.Depth, "depth", "d", 64, "requests in flight")
	f.StringVarP(&o.Format, "format", "f", "", "image format (default: probe)")
	f.StringVarP(&size, "size", "s", "4096", "bytes per request")
	f.StringVarP(&step, "step", "S", "", "distance between request offsets (default: the request size)")
	f.StringVarP(&off, "offset", "o", "0", "offset of the first request")
	f.BoolVarP(&o.Write, "write", "w", false, "write instead of read")
	f.StringVar(&pattern, "pattern", "0xa5", "byte to write")
	f.Int64Var(&o.FlushInterval, "flush-interval", 0, "flush after every N requests")
	f.BoolVar(&o.NoDrain, "no-drain", false, "no final flush")
	f.StringVarP(&o.Cache, "cache", "t", "", "cache mode (writeback, none, writethrough, directsync, unsafe)")
	f.StringVarP(&aio, "aio", "i", "", "accepted for qemu-img compatibility")
	f.BoolVarP(&native, "nocache", "n", false, "accepted for qemu-img compatibility (use -t none)")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print nothing")
	f.BoolVarP(&o.ForceShare, "force-share", "U", false, "open the image although another process writes it (read-only only)")
	rootCmd.AddCommand(c)
}
