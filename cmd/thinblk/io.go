package main

import (
	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func init() {
	var (
		o       tool.IOOptions
		noCache bool
	)
	c := &cobra.Command{
		Use:   "io [-f FMT] [-r] [-t CACHE] [-d DISCARD] -c CMD ... FILE",
		Short: "run qemu-io style commands on an image",
		Long: `Run qemu-io style commands on an image, in order:

  write [-P PATTERN] [-f] [-q] OFF LEN   write the byte PATTERN (default 0xcd); -f: FUA
  write -c [-P PATTERN] OFF LEN          write compressed clusters (qcow2)
  write -z [-u] [-n] [-f] [-q] OFF LEN   write zeroes; -u: may deallocate; -n: no slow fallback
  discard [-q] OFF LEN                   discard (punches holes unless -d ignore)
  read [-P PATTERN] [-v] [-q] OFF LEN    read; -P: verify every byte is PATTERN
  map                                    runs allocated in the top layer
  flush, aio_flush                       make written data durable
  length                                 print the image size
  sleep MS                               pause
  sigraise SIGNAL                        send SIGNAL to thinblk itself (9: crash on the spot)

OFF and LEN take k, M, G, T suffixes. Every command runs even after one fails;
the exit code is 1 when any failed. Without -c, commands are read from stdin.`,
		Args: rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			if noCache && o.Cache == "" {
				o.Cache = "none"
			}
			o.Stdin = c.InOrStdin()
			o.Stderr = c.ErrOrStderr()
			return tool.IO(c.OutOrStdout(), args[0], o)
		},
	}
	f := c.Flags()
	f.StringVarP(&o.Format, "format", "f", "", "image format (default: probe)")
	f.BoolVarP(&o.ReadOnly, "read-only", "r", false, "open the image read-only")
	f.StringVarP(&o.Cache, "cache", "t", "", "cache mode: writeback, none, writethrough, directsync, unsafe")
	f.StringVarP(&o.Discard, "discard", "d", "unmap", "discard mode: unmap or ignore")
	f.StringArrayVarP(&o.Commands, "cmd", "c", nil, "command to run (repeatable)")
	f.BoolVarP(&noCache, "nocache", "n", false, "same as -t none")
	f.BoolVarP(&o.ForceShare, "force-share", "U", false, "open the image although another process writes it (read-only only)")
	rootCmd.AddCommand(c)
}
