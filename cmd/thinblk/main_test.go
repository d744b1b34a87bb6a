package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/thinblk/thinblk/tool"
)

func TestRunTurnsPanicsAndErrorsIntoOneLine(t *testing.T) {
	boom := &cobra.Command{Use: "zz-boom", Hidden: true, RunE: func(*cobra.Command, []string) error {
		var m map[string]int
		m["x"] = 1 // nil map write: a runtime panic
		return nil
	}}
	exit3 := &cobra.Command{Use: "zz-exit3", Hidden: true, RunE: func(*cobra.Command, []string) error {
		return &tool.ExitError{Code: 3, Err: errors.New("leaks found\nsecond line")}
	}}
	quiet := &cobra.Command{Use: "zz-quiet", Hidden: true, RunE: func(*cobra.Command, []string) error {
		return &tool.ExitError{Code: 2}
	}}
	rootCmd.AddCommand(boom, exit3, quiet)
	defer rootCmd.RemoveCommand(boom, exit3, quiet)

	cases := []struct {
		args []string
		code int
		want string // "" = nothing on stderr
	}{
		{[]string{"zz-boom"}, 1, "thinblk: internal error (please report): assignment to entry in nil map\n"},
		{[]string{"zz-exit3"}, 3, "thinblk: leaks found second line\n"},
		{[]string{"zz-quiet"}, 2, ""},
		{[]string{"nope"}, 1, "thinblk: unknown command \"nope\" for \"thinblk\" (see 'thinblk --help')\n"},
		{[]string{"info", "--nope", "x"}, 1, "thinblk: unknown flag: --nope (see 'thinblk info --help')\n"},
		{[]string{"map"}, 1, "thinblk: map takes 1 argument, got 0 (see 'thinblk map --help')\n"},
		{[]string{"create", "a", "1", "2"}, 1, "thinblk: create takes 1 to 2 arguments, got 3 (see 'thinblk create --help')\n"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != c.code || errb.String() != c.want {
			t.Errorf("run(%q) = %d, stderr %q; want %d, %q", c.args, code, errb.String(), c.code, c.want)
		}
		if strings.Contains(out.String(), "Usage:") {
			t.Errorf("run(%q) printed usage on stdout:\n%s", c.args, out.String())
		}
	}
}
