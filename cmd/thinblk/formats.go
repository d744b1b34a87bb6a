package main

// Every format package registers itself with package image from init; the
// blank imports in this file are what makes a format available to thinblk.
// Add one line per format package, e.g.
//
//	import _ "github.com/thinblk/thinblk/format/raw"
//
// TODO(H3): import format/raw once it is committed.
