// Command thinblk is the thinblk storage stack's one binary: image tools
// (create, info, map, io, ...) with qemu-img's flags and output shapes, and
// servers (nbd, serve). Each verb lives in its own file and registers itself
// on rootCmd from init; the logic of every verb is in package tool.
//
// Errors are one line on stderr, "thinblk: <what failed>: <why>", with exit
// code 1 unless the verb asks for another (tool.ExitError). A Go panic or a
// usage dump never reaches the user on a runtime error.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/file"
	"github.com/thinblk/thinblk/tool"
)

var rootCmd = &cobra.Command{
	Use:   "thinblk",
	Short: "thinblk: thin-provisioned virtual disk images, tools and servers",
	Long: `thinblk creates, inspects and serves thin-provisioned virtual disk images.

Image verbs take qemu-img's flags and print qemu-img's output shapes;
"thinblk io" runs qemu-io style commands.`,
	SilenceUsage:  true,
	SilenceErrors: true,
}

// usageError is a mistake on the command line (unknown flag or verb, wrong
// number of arguments): printed with a pointer to --help.
type usageError struct {
	cmd string
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func init() {
	rootCmd.CompletionOptions.HiddenDefaultCmd = true
	rootCmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{cmd: c.CommandPath(), err: err}
	})
}

// rangeArgs is cobra.RangeArgs that reports a usage error.
func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			want := fmt.Sprintf("%d argument", lo)
			if hi != lo {
				want = fmt.Sprintf("%d to %d arguments", lo, hi)
			} else if lo != 1 {
				want += "s"
			}
			return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("%s takes %s, got %d", c.Name(), want, len(args))}
		}
		return nil
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit code. A panic in the
// calling goroutine becomes an error line and exit code 1: a safety net, not
// a way to report errors.
func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "thinblk: internal error (please report): %v\n", r)
			code = 1
		}
	}()
	rootCmd.SetArgs(args)
	rootCmd.SetOut(stdout)
	rootCmd.SetErr(stderr)
	err := rootCmd.Execute()
	if err == nil {
		return 0
	}
	return report(stderr, err)
}

// report prints err as one line and returns its exit code.
func report(stderr io.Writer, err error) int {
	code := 1
	var ee *tool.ExitError
	if errors.As(err, &ee) {
		code = ee.Code
		if ee.Err == nil {
			return code
		}
	}
	msg := oneLine(err.Error())
	if m, ok := lockMessage(err); ok {
		msg = m
	}
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "thinblk: %s (see '%s --help')\n", msg, ue.cmd)
	case strings.HasPrefix(msg, "unknown command"):
		fmt.Fprintf(stderr, "thinblk: %s (see 'thinblk --help')\n", msg)
	default:
		fmt.Fprintf(stderr, "thinblk: %s\n", msg)
	}
	return code
}

// lockMessage words an image lock conflict as qemu-img does, on one line:
// "Could not open 'x.qcow2': Failed to get "write" lock: Is another process
// using the image [x.qcow2]?" (the name opened first, the locked file last:
// they differ when a backing file is locked).
func lockMessage(err error) (string, bool) {
	var le *file.LockError
	if !errors.As(err, &le) {
		return "", false
	}
	name := le.Name
	var op *block.OpError
	if errors.As(err, &op) && op.Op == "open" {
		name = op.Node
	}
	return fmt.Sprintf("Could not open '%s': %v", name, le), true
}

// oneLine folds a multi-line message onto one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// parseOptionFlags merges repeated -o flags (key=value,... each) into one
// map; a later key wins.
func parseOptionFlags(flags []string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range flags {
		m, err := image.ParseKeyValues(f)
		if err != nil {
			return nil, err
		}
		for k, v := range m {
			out[k] = v
		}
	}
	return out, nil
}
