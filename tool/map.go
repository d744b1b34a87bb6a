package tool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/copy"
	"github.com/thinblk/thinblk/image"
)

// MapOptions are the flags of `thinblk map`.
type MapOptions struct {
	Format string // -f; "" probes
	// Output is "human" (default, also "") or "json".
	Output string
	// Start (--start-offset) is where the map begins; MaxLength
	// (--max-length) bounds it, -1 for no bound.
	Start     int64
	MaxLength int64
	// ForceShare (-U) opens the image although another process writes
	// it: no permission is refused to others (see image.Options).
	ForceShare bool
	// Options are driver options for the top image.
	Options map[string]string
}

// MapEntry is one run of qemu-img map's output.
type MapEntry struct {
	Start, Length int64
	Depth         int
	Present       bool // described by the layer at Depth
	Zero          bool // reads as zeros
	Data          bool // reads come from stored bytes
	HasOffset     bool
	Offset        int64  // host offset in Filename, when HasOffset
	Filename      string // storage holding the run, when HasOffset
}

// mergeable is qemu-img's rule for joining next onto curr.
func (curr *MapEntry) mergeable(next *MapEntry) bool {
	if curr.Length == 0 {
		return false
	}
	if curr.Zero != next.Zero || curr.Data != next.Data || curr.Depth != next.Depth ||
		curr.Present != next.Present || curr.HasOffset != next.HasOffset ||
		curr.Filename != next.Filename {
		return false
	}
	return !curr.HasOffset || curr.Offset+curr.Length == next.Offset
}

// errHumanMap is qemu-img's refusal to print runs without a host offset in
// human form.
var errHumanMap = errors.New("file contains external, encrypted or compressed clusters; use --output=json")

// Map prints the allocation map of name and its backing chain to w, in
// qemu-img map's shapes: JSON one entry per line, adjacent runs merged when
// all fields agree and host offsets are contiguous; human output lists only
// runs with data. Output is streamed: memory does not grow with the image
// size or the number of runs.
func Map(w io.Writer, name string, o MapOptions) error {
	if o.Output != "" && o.Output != "human" && o.Output != "json" {
		return fmt.Errorf("map: invalid output format %q (want human or json)", o.Output)
	}
	if o.Start < 0 {
		return fmt.Errorf("map: negative start offset %d", o.Start)
	}
	d, err := image.Open(name, image.Options{Format: o.Format, ReadOnly: true, Options: o.Options, ForceShare: o.ForceShare})
	if err != nil {
		return err
	}
	defer d.Close()
	bw := bufio.NewWriterSize(w, 64<<10)
	m := &mapper{w: bw, json: o.Output == "json"}
	m.chain(name, d)
	err = m.run(o.Start, o.MaxLength)
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("map %s: %w", name, err)
	}
	return nil
}

// mapper walks one chain and prints its entries.
type mapper struct {
	w     *bufio.Writer
	json  bool
	nodes []block.Driver // nodes[depth]
	names []string       // names[depth], "" when unknown
	buf   []byte
}

// chain records the nodes of d's backing chain and their names.
func (m *mapper) chain(name string, d block.Driver) {
	for d != nil && len(m.nodes) <= image.MaxChainDepth {
		m.nodes = append(m.nodes, d)
		m.names = append(m.names, name)
		if bf, ok := block.As[image.BackingFiler](d); ok && name != "" {
			bname, _ := bf.BackingFile()
			name = image.ResolveBacking(name, bname)
		} else {
			name = ""
		}
		b, ok := d.(block.Backed)
		if !ok {
			return
		}
		d = b.Backing()
	}
}

// entry turns one ChainStatus answer into qemu-img's terms.
func (m *mapper) entry(e block.Extent) MapEntry {
	me := MapEntry{
		Start:   e.Off,
		Length:  e.Len,
		Depth:   e.Depth,
		Present: e.Status.Present(),
		Zero:    e.Status&block.Zero != 0,
		Data:    e.Status&block.Data != 0,
	}
	if e.Depth > 0 && e.Depth < len(m.nodes) && e.Off >= m.nodes[e.Depth].Size() {
		// Past the end of a shorter backing node: qemu says the layer
		// above reads zeros there without having it allocated.
		me.Depth, me.Present, me.Zero, me.Data = e.Depth-1, false, true, false
		return me
	}
	if !me.Present {
		// Unallocated in the whole chain: reads as zeros.
		me.Zero = true
	}
	// A host offset is shown whenever the layer knows one, even for a run
	// it does not describe (an extended-L2 cluster with unallocated
	// subclusters), but never for compressed data.
	if e.HostOffset >= 0 && e.Status&block.Compressed == 0 {
		me.HasOffset, me.Offset = true, e.HostOffset
		if e.Depth < len(m.names) {
			me.Filename = m.names[e.Depth]
		}
	}
	return me
}

func (m *mapper) run(start, maxLength int64) error {
	top := m.nodes[0]
	length := top.Size()
	if maxLength >= 0 && maxLength < length-start {
		length = start + maxLength
	}
	if m.json {
		m.w.WriteByte('[')
	} else {
		m.w.WriteString("Offset          Length          Mapped to       File\n")
	}
	cur := copy.NewStatusCursor(top, nil)
	curr := MapEntry{Start: start}
	for curr.Start+curr.Length < length {
		off := curr.Start + curr.Length
		e, err := cur.Status(off, length-off)
		if err != nil {
			return err
		}
		if e.Off != off || e.Len <= 0 || e.Len > length-off {
			return fmt.Errorf("block status at %d returned the run [%d, +%d): %w", off, e.Off, e.Len, block.ErrCorrupt)
		}
		next := m.entry(e)
		if curr.mergeable(&next) {
			curr.Length += next.Length
			continue
		}
		if curr.Length > 0 {
			if err := m.dump(&curr, &next); err != nil {
				return err
			}
		}
		curr = next
	}
	if err := m.dump(&curr, nil); err != nil {
		return err
	}
	if m.json {
		m.w.WriteString("]\n")
	}
	return nil
}

// dump prints e; next is the entry that follows (nil for the last), which
// human output may rewrite to merge more, exactly as qemu-img does.
func (m *mapper) dump(e, next *MapEntry) error {
	if m.json {
		b := m.buf[:0]
		b = append(b, `{ "start": `...)
		b = strconv.AppendInt(b, e.Start, 10)
		b = append(b, `, "length": `...)
		b = strconv.AppendInt(b, e.Length, 10)
		b = append(b, `, "depth": `...)
		b = strconv.AppendInt(b, int64(e.Depth), 10)
		b = append(b, `, "present": `...)
		b = strconv.AppendBool(b, e.Present)
		b = append(b, `, "zero": `...)
		b = strconv.AppendBool(b, e.Zero)
		b = append(b, `, "data": `...)
		b = strconv.AppendBool(b, e.Data)
		if e.HasOffset {
			b = append(b, `, "offset": `...)
			b = strconv.AppendInt(b, e.Offset, 10)
		}
		b = append(b, '}')
		if next != nil {
			b = append(b, ",\n"...)
		}
		m.buf = b
		_, err := m.w.Write(b)
		return err
	}
	if e.Data && !e.HasOffset {
		return errHumanMap
	}
	if e.Data && !e.Zero {
		var off int64
		if e.HasOffset {
			off = e.Offset
		}
		fmt.Fprintf(m.w, "%-16s%-16s%-16s%s\n", cHex(e.Start), cHex(e.Length), cHex(off), e.Filename)
	}
	if next != nil && (!next.Data || next.Zero) {
		next.Data, next.Zero = false, true
	}
	return nil
}

// cHex is C's printf("%#x"): "0" for zero, "0x..." otherwise.
func cHex(v int64) string {
	if v == 0 {
		return "0"
	}
	return "0x" + strconv.FormatInt(v, 16)
}
