package main

// Every format package registers itself with package image from init; the
// blank imports below are what makes a format available to thinblk. Add one
// line per format package.
import (
	_ "github.com/thinblk/thinblk/format/qcow2"
	_ "github.com/thinblk/thinblk/format/raw"
	_ "github.com/thinblk/thinblk/format/vdi"
	_ "github.com/thinblk/thinblk/format/vhdx"
	_ "github.com/thinblk/thinblk/format/vmdk"
	_ "github.com/thinblk/thinblk/format/vpc"
)
