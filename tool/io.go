package tool

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/thinblk/thinblk/image"
)

// IOOptions are the flags of `thinblk io`.
type IOOptions struct {
	Format   string // -f; "" probes
	ReadOnly bool   // -r
	// Cache is -t: writeback (default), none, writethrough, directsync,
	// unsafe.
	Cache string
	// Discard is -d: unmap (default, as qemu-io: discards punch holes) or
	// ignore.
	Discard string
	// Commands are the -c commands, run in order. When empty, commands are
	// read from Stdin, one per line (blank lines and lines starting with
	// '#' are skipped).
	Commands []string
	Stdin    io.Reader
	// Stderr receives one line per failed command; nil discards them.
	Stderr io.Writer
	// Options are driver options for the image.
	Options map[string]string
	// ForceShare (-U) opens a read-only image although another process
	// writes it (see image.Options).
	ForceShare bool
}

// IO opens name and runs qemu-io style commands on it, printing qemu-io's
// report lines to w. Like qemu-io it runs every command even after one
// fails; each failure is reported on o.Stderr as one line (a pattern
// mismatch prints qemu-io's "Pattern verification failed" line on w). It
// returns &ExitError{Code: 1} when any command failed. Writable images are
// flushed before closing, as qemu-io does.
func IO(w io.Writer, name string, o IOOptions) error {
	discard := o.Discard
	if discard == "" {
		discard = "unmap"
	}
	d, err := image.Open(name, image.Options{
		Format:   o.Format,
		ReadOnly: o.ReadOnly,
		Cache:    o.Cache,
		Discard:  discard,
		Options:  o.Options,
		// qemu-io refuses -U on a writable image; image.Open says so.
		ForceShare: o.ForceShare,
	})
	if err != nil {
		return err
	}
	defer d.Close()
	stderr := o.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	s := &ioSession{d: d, w: bw}

	failed := false
	run := func(line string) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			return
		}
		err := s.exec(line)
		bw.Flush()
		if err != nil {
			failed = true
			if err != errReported {
				fmt.Fprintf(stderr, "thinblk: io: %s: %v\n", line, err)
			}
		}
	}
	if len(o.Commands) > 0 {
		for _, c := range o.Commands {
			run(c)
		}
	} else if o.Stdin != nil {
		sc := bufio.NewScanner(o.Stdin)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			run(sc.Text())
		}
		if err := sc.Err(); err != nil {
			fmt.Fprintf(stderr, "thinblk: io: reading commands: %v\n", err)
			failed = true
		}
	}
	if !o.ReadOnly {
		if err := d.Flush(); err != nil {
			fmt.Fprintf(stderr, "thinblk: io: flush on close: %v\n", err)
			failed = true
		}
	}
	if failed {
		return &ExitError{Code: 1}
	}
	return nil
}
