package tool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/format/qcow2"
	"github.com/thinblk/thinblk/format/vhdx"
	"github.com/thinblk/thinblk/image"
	"github.com/thinblk/thinblk/protocol/file"
)

// CheckOptions are the flags of `thinblk check` (qemu-img check).
type CheckOptions struct {
	Format string // -f; "" probes
	// Output is "human" (default, also "") or "json".
	Output string
	// Repair is "" (none), "leaks" or "all" (-r).
	Repair string
	// ForceShare (-U) checks the image although another process writes
	// it (see image.Options); only without Repair.
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
	if o.ForceShare && mode != qcow2.RepairNone {
		return &ExitError{Code: 1, Err: &block.OpError{Op: "open", Node: name,
			Err: fmt.Errorf("%w: force-share=on can only be used with read-only images", block.ErrInvalid)}}
	}
	d, err := image.Open(name, image.Options{Format: o.Format, ReadOnly: mode == qcow2.RepairNone, NoBacking: true, Options: opts, ForceShare: o.ForceShare})
	if err != nil && len(opts) > 0 && errors.Is(err, block.ErrInvalid) {
		// Not a qcow2 image: its format does not take the option.
		d, err = image.Open(name, image.Options{Format: o.Format, ReadOnly: true, NoBacking: true})
	}
	// Another process using the image is the answer: no fallback opens.
	locked := errors.Is(err, file.ErrLocked)
	if err != nil && mode != qcow2.RepairNone && !locked {
		// A format checker that cannot repair says so (63) even where
		// the image cannot be opened writable (a vdi with a doubly used
		// block, a vmdk with flat extents), as qemu-img does.
		if ro, rerr := image.Open(name, image.Options{Format: o.Format, ReadOnly: true, NoBacking: true}); rerr == nil {
			if _, ok := block.As[formatChecker](ro); ok {
				d, err = ro, nil
			} else {
				ro.Close()
			}
		}
	}
	logReplayed := false
	if err != nil && mode != qcow2.RepairNone && !locked && (o.Format == "" || o.Format == "vhdx") {
		// A VHDX whose log needs a replay opens only once the log is
		// replayed into the file: qemu does that on any read-write open
		// and counts it as a repaired corruption.
		if replayed, rerr := replayVHDXLog(name); rerr != nil {
			err = fmt.Errorf("%w (and replaying its log failed: %v)", err, rerr)
		} else if replayed {
			logReplayed = true
			d, err = image.Open(name, image.Options{Format: o.Format, NoBacking: true})
		}
	}
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	defer d.Close()
	img, ok := block.As[*qcow2.Image](d)
	if !ok {
		return checkOther(w, name, d, o, mode, logReplayed)
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
	return reportCheck(w, name, o, mode, res, err)
}

// reportCheck prints res (human or JSON) and returns qemu-img check's exit
// code for it; err is an error of the check itself (exit 1).
func reportCheck(w io.Writer, name string, o CheckOptions, mode qcow2.RepairMode, res *qcow2.CheckResult, err error) error {
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

// formatChecker is the consistency check of a format without refcounts
// (vdi, vhdx and vmdk; qcow2 has its own, richer one). Check returns one
// line per problem ("ERROR: ..."), each a corruption, and how many
// corruptions it repaired. A non-nil error means the check could not be
// completed (qemu-img check's exit 1; problems found so far are still
// returned); an error wrapping block.ErrNotSupported with repair set means
// the format has no repair (exit 63, as qemu-img).
type formatChecker interface {
	Check(repair bool) (problems []string, repaired int, err error)
}

// checkOther checks an image that is not qcow2: through its format's
// formatChecker, or exit 63 when the format has none (raw, vpc), as
// qemu-img. logReplayed says that a VHDX log was replayed before the open:
// one repaired corruption, as qemu-img counts it.
func checkOther(w io.Writer, name string, d block.Driver, o CheckOptions, mode qcow2.RepairMode, logReplayed bool) error {
	info, _ := d.Info()
	c, ok := block.As[formatChecker](d)
	if !ok {
		return &ExitError{Code: 63, Err: fmt.Errorf("check: %s: this image format (%s) does not support checks", name, info.Format)}
	}
	problems, repaired, err := c.Check(mode != qcow2.RepairNone)
	if err != nil && mode != qcow2.RepairNone && errors.Is(err, block.ErrNotSupported) {
		return &ExitError{Code: 63, Err: fmt.Errorf("check: %s: %w; check without -r", name, err)}
	}
	if err != nil {
		// As qemu-img: the problems found, then "check failed" and exit 1
		// without a summary.
		if o.Output != "json" {
			for _, p := range problems {
				fmt.Fprintln(w, p)
			}
		}
		return &ExitError{Code: 1, Err: fmt.Errorf("check: %s: check failed: %w", name, err)}
	}
	if logReplayed {
		repaired++
	}
	res := &qcow2.CheckResult{Filename: name, Format: info.Format, Corruptions: len(problems), CorruptionsFixed: repaired, Messages: problems}
	return reportCheck(w, name, o, mode, res, nil)
}

// replayVHDXLog replays the log of name into the file when name is a local
// VHDX image that has one (see vhdx.ReplayLog), and reports whether it did.
// A file it cannot open writable is not replayed (the caller's open error
// says why).
func replayVHDXLog(name string) (bool, error) {
	if image.IsURL(name) {
		return false, nil
	}
	f, err := file.Open(name, file.Options{Growable: true})
	if err != nil {
		return false, nil
	}
	defer f.Close()
	head := make([]byte, 8)
	if f.Size() < int64(len(head)) || f.Pread(head, 0) != nil || vhdx.Probe(head) == 0 {
		return false, nil
	}
	return vhdx.ReplayLog(f)
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
	if r.TotalClusters > 0 && r.AllocatedClusters > 0 {
		// As qemu-img: fragmented and compressed are shares of the
		// allocated clusters, and the line is left out when there are none.
		pct := func(n, of int64) float64 { return 100 * float64(n) / float64(of) }
		fmt.Fprintf(w, "%d/%d = %.2f%% allocated, %.2f%% fragmented, %.2f%% compressed clusters\n",
			r.AllocatedClusters, r.TotalClusters, pct(r.AllocatedClusters, r.TotalClusters),
			pct(r.FragmentedClusters, r.AllocatedClusters), pct(r.CompressedClusters, r.AllocatedClusters))
	}
	if r.ImageEndOffset > 0 {
		fmt.Fprintf(w, "Image end offset: %d\n", r.ImageEndOffset)
	}
}
