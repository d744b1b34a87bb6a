package tool

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/image"
)

// InfoOptions are the flags of `thinblk info`.
type InfoOptions struct {
	Format string // -f; "" probes
	// Output is "human" (default, also "") or "json".
	Output string
	// BackingChain (--backing-chain) describes every image of the chain.
	BackingChain bool
	// ForceShare (-U) opens the images although another process writes
	// them: no permission is refused to others (see image.Options).
	ForceShare bool
	// Options are driver options for the top image.
	Options map[string]string
}

// ImageInfo is one image's description, with qemu-img info's JSON field
// names (and their order as qemu 7.2 prints them) plus thinblk's
// highest-allocated-offset.
type ImageInfo struct {
	Snapshots              []SnapshotJSON  `json:"snapshots,omitempty"`
	BackingFilenameFormat  string          `json:"backing-filename-format,omitempty"`
	VirtualSize            int64           `json:"virtual-size"`
	Filename               string          `json:"filename"`
	ClusterSize            int64           `json:"cluster-size,omitempty"`
	Format                 string          `json:"format"`
	ActualSize             *int64          `json:"actual-size,omitempty"`
	HighestAllocatedOffset *int64          `json:"highest-allocated-offset,omitempty"`
	FormatSpecific         *FormatSpecific `json:"format-specific,omitempty"`
	FullBackingFilename    string          `json:"full-backing-filename,omitempty"`
	BackingFilename        string          `json:"backing-filename,omitempty"`
	DirtyFlag              bool            `json:"dirty-flag"`

	specific any // Info.Specific, for human output
}

// SnapshotJSON is one entry of qemu-img info's "snapshots", fields in qemu
// 7.2's order.
type SnapshotJSON struct {
	ICount      *int64 `json:"icount,omitempty"`
	VMClockNsec uint64 `json:"vm-clock-nsec"`
	Name        string `json:"name"`
	DateSec     int64  `json:"date-sec"`
	DateNsec    int64  `json:"date-nsec"`
	VMClockSec  uint64 `json:"vm-clock-sec"`
	ID          string `json:"id"`
	VMStateSize uint64 `json:"vm-state-size"`
}

// FormatSpecific is qemu-img info's "format-specific" object.
type FormatSpecific struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

// HumanFielder is implemented by a format's Info.Specific value to print
// qemu-img info's "Format specific information:" lines (key, value).
type HumanFielder interface {
	HumanFields() [][2]string
}

// Info describes the image name (and with o.BackingChain each image below
// it) on w, as qemu-img info does.
func Info(w io.Writer, name string, o InfoOptions) error {
	infos, err := CollectInfo(name, o)
	if err != nil {
		return err
	}
	switch o.Output {
	case "", "human":
		for i, in := range infos {
			if i > 0 {
				fmt.Fprintln(w)
			}
			writeHumanInfo(w, in)
		}
		return nil
	case "json":
		var v any = infos[0]
		if o.BackingChain {
			v = infos
		}
		b, err := json.MarshalIndent(v, "", "    ")
		if err != nil {
			return fmt.Errorf("info %s: encoding JSON: %w", name, err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	return fmt.Errorf("info: invalid output format %q (want human or json)", o.Output)
}

// CollectInfo opens name (without its backing chain) and, with
// o.BackingChain, each backing image in turn, and describes them.
func CollectInfo(name string, o InfoOptions) ([]ImageInfo, error) {
	var out []ImageInfo
	seen := map[string]bool{}
	format, opts := o.Format, o.Options
	for depth := 0; ; depth++ {
		if depth > image.MaxChainDepth {
			return nil, fmt.Errorf("info %s: backing chain deeper than %d images", name, image.MaxChainDepth)
		}
		key := image.ChainKey(name)
		if seen[key] {
			return nil, fmt.Errorf("info %s: backing file loop", name)
		}
		seen[key] = true
		in, err := describe(name, format, opts, o.ForceShare)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
		if !o.BackingChain || in.BackingFilename == "" {
			return out, nil
		}
		name, format, opts = in.FullBackingFilename, in.BackingFilenameFormat, nil
	}
}

// describe opens one image read-only without its backing chain, for its
// metadata only (image.Options.NoIO, the locks qemu-img info takes).
func describe(name, format string, opts map[string]string, forceShare bool) (ImageInfo, error) {
	d, err := image.Open(name, image.Options{Format: format, ReadOnly: true, NoBacking: true, Options: opts, NoIO: true, ForceShare: forceShare})
	if err != nil {
		return ImageInfo{}, err
	}
	defer d.Close()
	bi, err := d.Info()
	if err != nil {
		return ImageInfo{}, &block.OpError{Op: "info", Node: name, Err: err}
	}
	in := ImageInfo{
		VirtualSize: d.Size(),
		Filename:    name,
		Format:      bi.Format,
		specific:    bi.Specific,
	}
	if bi.AllocatedBytes >= 0 {
		v := bi.AllocatedBytes
		in.ActualSize = &v
	}
	if bi.Watermark >= 0 {
		v := bi.Watermark
		in.HighestAllocatedOffset = &v
	}
	if bi.Specific != nil {
		in.FormatSpecific = &FormatSpecific{Type: bi.Format, Data: bi.Specific}
	}
	if cs, ok := block.As[image.ClusterSizer](d); ok {
		in.ClusterSize = cs.ClusterSize()
	}
	if df, ok := block.As[image.DirtyFlagger](d); ok {
		in.DirtyFlag = df.DirtyFlag()
	}
	if sl, ok := block.As[image.SnapshotLister](d); ok {
		in.Snapshots = snapshotsJSON(sl)
	}
	if bf, ok := block.As[image.BackingFiler](d); ok {
		if bname, bfmt := bf.BackingFile(); bname != "" {
			in.BackingFilename = bname
			in.FullBackingFilename = image.ResolveBacking(name, bname)
			in.BackingFilenameFormat = bfmt
		}
	}
	return in, nil
}

func writeHumanInfo(w io.Writer, in ImageInfo) {
	fmt.Fprintf(w, "image: %s\n", in.Filename)
	fmt.Fprintf(w, "file format: %s\n", in.Format)
	fmt.Fprintf(w, "virtual size: %s (%d bytes)\n", FormatSize(in.VirtualSize), in.VirtualSize)
	if in.ActualSize != nil {
		fmt.Fprintf(w, "disk size: %s\n", FormatSize(*in.ActualSize))
	} else {
		fmt.Fprintf(w, "disk size: unavailable\n")
	}
	if in.HighestAllocatedOffset != nil {
		fmt.Fprintf(w, "highest allocated offset: %s (%d bytes)\n", FormatSize(*in.HighestAllocatedOffset), *in.HighestAllocatedOffset)
	}
	if in.ClusterSize > 0 {
		fmt.Fprintf(w, "cluster_size: %d\n", in.ClusterSize)
	}
	if in.DirtyFlag {
		fmt.Fprintf(w, "cleanly shut down: no\n")
	}
	if in.BackingFilename != "" {
		if in.FullBackingFilename != in.BackingFilename {
			fmt.Fprintf(w, "backing file: %s (actual path: %s)\n", in.BackingFilename, in.FullBackingFilename)
		} else {
			fmt.Fprintf(w, "backing file: %s\n", in.BackingFilename)
		}
		if in.BackingFilenameFormat != "" {
			fmt.Fprintf(w, "backing file format: %s\n", in.BackingFilenameFormat)
		}
	}
	if len(in.Snapshots) > 0 {
		writeSnapshotList(w, in.Snapshots)
	}
	if hf, ok := in.specific.(HumanFielder); ok {
		fmt.Fprintf(w, "Format specific information:\n")
		for _, kv := range hf.HumanFields() {
			fmt.Fprintf(w, "    %s: %s\n", kv[0], kv[1])
		}
	}
}

// writeSnapshotList prints qemu-img info's "Snapshot list:" table (dates in
// local time, as qemu).
func writeSnapshotList(w io.Writer, snaps []SnapshotJSON) {
	fmt.Fprintf(w, "Snapshot list:\n")
	fmt.Fprintf(w, "%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT")
	for _, sn := range snaps {
		date := time.Unix(sn.DateSec, 0).Format("2006-01-02 15:04:05")
		secs := sn.VMClockSec
		clock := fmt.Sprintf("%02d:%02d:%02d.%03d", secs/3600, secs/60%60, secs%60, sn.VMClockNsec/1000000)
		icount := ""
		if sn.ICount != nil {
			icount = fmt.Sprint(*sn.ICount)
		}
		fmt.Fprintf(w, "%-9s %-16s %8s%20s%13s%11s\n", sn.ID, sn.Name, FormatSize(int64(sn.VMStateSize)), date, clock, icount)
	}
}
