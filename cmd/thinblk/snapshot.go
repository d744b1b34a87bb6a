package main

import (
	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func init() {
	var o tool.SnapshotOptions
	c := &cobra.Command{
		Use:   "snapshot [-l | -a SNAPSHOT | -c SNAPSHOT | -d SNAPSHOT] [-f FMT] [-q] FILE",
		Short: "list, create, apply or delete internal snapshots (qemu-img snapshot)",
		Args:  rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			f := c.Flags()
			o.ApplyGiven, o.CreateGiven, o.DeleteGiven = f.Changed("apply"), f.Changed("create"), f.Changed("delete")
			return tool.Snapshot(c.OutOrStdout(), args[0], o)
		},
	}
	f := c.Flags()
	f.StringVarP(&o.Format, "format", "f", "", "image format (default: probe)")
	f.BoolVarP(&o.List, "list", "l", false, "list the snapshots (the default)")
	f.StringVarP(&o.Apply, "apply", "a", "", "revert the image to a snapshot (by ID, or else by name)")
	f.StringVarP(&o.Create, "create", "c", "", "create a snapshot of the image with this name")
	f.StringVarP(&o.Delete, "delete", "d", "", "delete the snapshot with this name")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print nothing on success")
	f.BoolVarP(&o.ForceShare, "force-share", "U", false, "list although another process writes the image (with -l only)")
	rootCmd.AddCommand(c)
}
