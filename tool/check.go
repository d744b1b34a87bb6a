package tool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/format/qcow2"
	"github.com/thinblk/thinblk/image"
)

// CheckOptions are the flags of `thinblk check` (qemu-img check).
type CheckOptions struct {
	Format string // -f; "" probes
	// Output is "human" (default, also "") or "json".
	Output string
	// Repair is "" (none), "leaks" or "all" (-r).
	Repair string
	// ForceShare (-U) is accepted for qemu-img compatibility.
	ForceShare bool
}

// Check checks an image for consistency and optionally repairs it, with
// qemu-img check's output and exit codes: 0 clean, 1 the check could not
// finish, 2 corruptions remain, 3 only leaks remain, 63 the format has no
// check.
func Check(w io.Writer, name string, o CheckOptions) error {
	var mode qcow2.RepairMode
	switch o.Repair {
	case "":
	case "leaks":
		mode = qcow2.RepairLeaks
	case "all":
		mode = qcow2.RepairAll
	default:
		return fmt.Errorf("check: invalid repair mode %q (want leaks or all)", o.Repair)
	}
	if o.Output != "" && o.Output != "human" && o.Output != "json" {
		return fmt.Errorf("check: invalid output format %q (want human or json)", o.Output)
	}
	opts := map[string]string{}
	if mode == qcow2.RepairAll && (o.Format == "" || o.Format == "qcow2") {
		// Let the repair below rebuild a dirty image's refcounts, and
		// report what it fixed, instead of the open doing it silently.
		opts[qcow2.OptionKeepDirty] = "on"
	}
	d, err := image.Open(name, image.Options{Format: o.Format, ReadOnly: mode == qcow2.RepairNone, NoBacking: true, Options: opts})
	if err != nil && len(opts) > 0 && errors.Is(err, block.ErrInvalid) {
		// Not a qcow2 image: its format does not take the option.
		d, err = image.Open(name, image.Options{Format: o.Format, ReadOnly: true, NoBacking: true})
	}
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	defer d.Close()
	img, ok := block.As[*qcow2.Image](d)
	if !ok {
		info, _ := d.Info()
		return &ExitError{Code: 63, Err: fmt.Errorf("check: %s: this image format (%s) does not support checks", name, info.Format)}
	}
	res, err := img.Check(mode)
	if err == nil && mode != qcow2.RepairNone && (res.LeaksFixed > 0 || res.CorruptionsFixed > 0) {
		// Double-check the repaired image, as qemu-img does.
		var again *qcow2.CheckResult
		if again, err = img.Check(qcow2.RepairNone); err == nil {
			again.LeaksFixed, again.CorruptionsFixed = res.LeaksFixed, res.CorruptionsFixed
			res = again
		}
	}
	if res == nil {
		res = &qcow2.CheckResult{Filename: name, Format: "qcow2", CheckErrors: 1}
	}
	res.Filename = name
	if o.Output == "json" {
		b, jerr := json.MarshalIndent(res, "", "    ")
		if jerr != nil {
			return jerr
		}
		fmt.Fprintf(w, "%s\n", b)
	} else {
		writeHumanCheck(w, res, mode)
	}
	switch {
	case err != nil || res.CheckErrors > 0:
		if err == nil {
			err = errors.New("check could not be completed")
		}
		return &ExitError{Code: 1, Err: fmt.Errorf("check: %s: %w", name, err)}
	case res.Corruptions > 0:
		return &ExitError{Code: 2}
	case res.Leaks > 0:
		return &ExitError{Code: 3}
	}
	return nil
}

func writeHumanCheck(w io.Writer, r *qcow2.CheckResult, mode qcow2.RepairMode) {
	if r.LeaksFixed > 0 || r.CorruptionsFixed > 0 {
		fmt.Fprintf(w, "The following inconsistencies were found and repaired:\n\n")
		fmt.Fprintf(w, "    %d leaked clusters\n    %d corruptions\n\nDouble checking the fixed image now...\n", r.LeaksFixed, r.CorruptionsFixed)
	}
	for _, m := range r.Messages {
		fmt.Fprintln(w, m)
	}
	switch {
	case r.Corruptions == 0 && r.Leaks == 0 && r.CheckErrors == 0:
		fmt.Fprintf(w, "No errors were found on the image.\n")
	default:
		if r.Corruptions > 0 {
			fmt.Fprintf(w, "\n%d errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n", r.Corruptions)
		}
		if r.Leaks > 0 {
			fmt.Fprintf(w, "\n%d leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n", r.Leaks)
		}
		if r.CheckErrors > 0 {
			fmt.Fprintf(w, "\n%d internal errors have occurred during the check.\n", r.CheckErrors)
		}
	}
	if r.TotalClusters > 0 {
		pct := func(n int64) float64 { return 100 * float64(n) / float64(r.TotalClusters) }
		fmt.Fprintf(w, "%d/%d = %.2f%% allocated, %.2f%% fragmented, %.2f%% compressed clusters\n",
			r.AllocatedClusters, r.TotalClusters, pct(r.AllocatedClusters), pct(r.FragmentedClusters), pct(r.CompressedClusters))
	}
	if r.ImageEndOffset > 0 {
		fmt.Fprintf(w, "Image end offset: %d\n", r.ImageEndOffset)
	}
}
