// Command mkimage writes a deterministic sparse raw test image (see package
// workload).
//
//	usage: mkimage PATH SIZE DATA ZERO [SEED]
//
// SIZE, DATA and ZERO take k/M/G suffixes (powers of 1024); SEED defaults
// to 1. It mirrors /work/shared/bench/mkimage.py's arguments except that
// sizes carry units.
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/thinblk/thinblk/internal/workload"
	"github.com/thinblk/thinblk/tool"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 4 || len(args) > 5 {
		return fmt.Errorf("usage: mkimage PATH SIZE DATA ZERO [SEED]")
	}
	var s workload.Spec
	var err error
	for i, p := range []*int64{&s.Size, &s.Data, &s.Zero} {
		if *p, err = tool.ParseSize(args[i+1]); err != nil {
			return err
		}
	}
	s.Seed = 1
	if len(args) == 5 {
		if s.Seed, err = strconv.ParseUint(args[4], 10, 64); err != nil {
			return fmt.Errorf("seed %q: %v", args[4], err)
		}
	}
	return workload.Create(args[0], s)
}
