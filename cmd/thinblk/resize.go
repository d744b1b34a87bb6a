package main

import (
	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func init() {
	var o tool.ResizeOptions
	c := &cobra.Command{
		Use:   "resize [-f FMT] [--shrink [--allow-data-loss]] [-q] FILE [+|-]SIZE",
		Short: "change the virtual size of an image (qemu-img resize)",
		// Flags are parsed in RunE: a negative size ("-1M") is an
		// argument, as for qemu-img resize, not the shorthand flags -1 -M.
		DisableFlagParsing: true,
		RunE: func(c *cobra.Command, args []string) error {
			if err := c.Flags().Parse(negativeSizesLast(args)); err != nil {
				return c.FlagErrorFunc()(c, err)
			}
			if help, _ := c.Flags().GetBool("help"); help {
				return c.Help()
			}
			args = c.Flags().Args()
			if err := rangeArgs(2, 2)(c, args); err != nil {
				return err
			}
			return tool.Resize(c.OutOrStdout(), args[0], args[1], o)
		},
	}
	f := c.Flags()
	f.StringVarP(&o.Format, "format", "f", "", "image format (default: probe)")
	f.BoolVar(&o.Shrink, "shrink", false, "allow shrinking the image")
	f.BoolVar(&o.AllowDataLoss, "allow-data-loss", false, "with --shrink, drop allocated data past the new end")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print nothing on success")
	rootCmd.AddCommand(c)
}

// negativeSizesLast moves the arguments before "--" that look like a
// negative size ("-" and a digit or '.') after a "--", keeping their order,
// so that the flag parser leaves them as positional arguments after the
// others. No flag of resize takes a value that starts so.
func negativeSizesLast(args []string) []string {
	var rest, sizes, tail []string
	for i, a := range args {
		if a == "--" {
			tail = args[i+1:]
			break
		}
		if len(a) > 1 && a[0] == '-' && (a[1] == '.' || a[1] >= '0' && a[1] <= '9') {
			sizes = append(sizes, a)
			continue
		}
		rest = append(rest, a)
	}
	if len(sizes) == 0 {
		return args
	}
	out := append(rest, "--")
	out = append(out, sizes...)
	return append(out, tail...)
}
