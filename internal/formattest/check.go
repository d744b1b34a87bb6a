package formattest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/thinblk/thinblk/internal/testutil"
)

// The check helpers the vdi, vhdx and vmdk check tests share: both
// programs' check of one image, compared.

// CheckRun is one program's `check` of an image: exit code, human output
// (stdout and stderr) and the JSON fields (nil when it printed none).
type CheckRun struct {
	Code  int
	Human string
	JSON  map[string]any
}

// RunCheck runs prog (qemu-img or thinblk) check on name, human and JSON.
func RunCheck(t *testing.T, prog, name string, args ...string) CheckRun {
	t.Helper()
	a := append([]string{"check"}, args...)
	out, errs, code := testutil.Run(t, prog, append(a, name)...)
	jout, _, jcode := testutil.Run(t, prog, append(append(a, "--output=json"), name)...)
	if jcode != code {
		t.Fatalf("%s check %v %s: exit %d, with --output=json %d", prog, args, name, code, jcode)
	}
	r := CheckRun{Code: code, Human: out + errs}
	if strings.TrimSpace(jout) != "" {
		if err := json.Unmarshal([]byte(jout), &r.JSON); err != nil {
			t.Fatalf("%s check --output=json %s: %v\n%s", prog, name, err, jout)
		}
	}
	return r
}

// CheckBoth checks name with qemu-img and thinblk and fails unless both
// exit with the same code and print the same JSON fields, with the same
// values except that thinblk's corruptions may exceed qemu-img's by
// moreCorruptions (the problems qemu-img does not look for). It returns
// thinblk's run.
func CheckBoth(t *testing.T, name string, moreCorruptions int, args ...string) CheckRun {
	t.Helper()
	testutil.NeedTool(t, "qemu-img")
	q := RunCheck(t, "qemu-img", name, args...)
	o := RunCheck(t, testutil.Thinblk(t), name, args...)
	if q.Code != o.Code {
		t.Fatalf("check %v %s: thinblk exits %d, qemu-img %d\nthinblk:\n%s\nqemu-img:\n%s", args, name, o.Code, q.Code, o.Human, q.Human)
	}
	want := q.JSON
	if moreCorruptions != 0 && want != nil {
		want = map[string]any{}
		for k, v := range q.JSON {
			want[k] = v
		}
		want["corruptions"] = q.JSON["corruptions"].(float64) + float64(moreCorruptions)
	}
	if !reflect.DeepEqual(want, o.JSON) {
		t.Fatalf("check --output=json %v %s: thinblk %v, want %v (qemu-img %v)", args, name, o.JSON, want, q.JSON)
	}
	return o
}

// ErrorLines returns the "ERROR" lines of a human check output.
func ErrorLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "ERROR") {
			lines = append(lines, l)
		}
	}
	return lines
}
