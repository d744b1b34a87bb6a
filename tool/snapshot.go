package tool

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/format/qcow2"
	"github.com/thinblk/thinblk/image"
)

// SnapshotOptions are the flags of `thinblk snapshot` (qemu-img snapshot).
// At most one of List, Apply, Create and Delete is set; none means List.
type SnapshotOptions struct {
	Format string // -f; "" probes
	List   bool   // -l
	Apply  string // -a: the snapshot's ID, or else its name
	Create string // -c: the new snapshot's name
	Delete string // -d: the snapshot's name (qemu-img deletes by name only)
	Quiet  bool   // -q
	// ForceShare (-U) lists the snapshots although another process
	// writes the image (see image.Options); only with List.
	ForceShare bool
	// ApplyGiven, CreateGiven and DeleteGiven record that -a, -c or -d was
	// given, so that an empty name counts: "" is a snapshot name for
	// qemu-img (-c "" creates a snapshot without a name, -a "" and -d ""
	// find it). A non-empty Apply, Create or Delete counts as given anyway.
	ApplyGiven, CreateGiven, DeleteGiven bool
}

// snapshotter is what format/qcow2 offers.
type snapshotter interface {
	CreateSnapshot(name string, now time.Time) (qcow2.Snapshot, error)
	ApplySnapshot(key string) error
	DeleteSnapshot(name string) error
}

// Snapshot lists, creates, applies or deletes the internal snapshots of
// an image, with qemu-img snapshot's output and messages.
func Snapshot(w io.Writer, name string, o SnapshotOptions) error {
	apply, create, del := o.ApplyGiven || o.Apply != "", o.CreateGiven || o.Create != "", o.DeleteGiven || o.Delete != ""
	actions := 0
	for _, set := range []bool{o.List, apply, create, del} {
		if set {
			actions++
		}
	}
	if actions > 1 {
		return errors.New("Cannot mix '-l', '-a', '-c', '-d'")
	}
	list := actions == 0 || o.List
	d, err := image.Open(name, image.Options{Format: o.Format, ReadOnly: list, NoBacking: true, ForceShare: o.ForceShare})
	if err != nil {
		return err
	}
	defer d.Close()
	if list {
		if sl, ok := block.As[image.SnapshotLister](d); ok {
			if snaps := snapshotsJSON(sl); len(snaps) > 0 {
				writeSnapshotList(w, snaps)
			}
		}
		return nil
	}
	s, ok := block.As[snapshotter](d)
	if !ok {
		info, _ := d.Info()
		return fmt.Errorf("%w: format %s has no internal snapshots", block.ErrNotSupported, info.Format)
	}
	switch {
	case create:
		if _, err := s.CreateSnapshot(o.Create, time.Now()); err != nil {
			return fmt.Errorf("Could not create snapshot '%s': %w", o.Create, err)
		}
	case apply:
		if err := s.ApplySnapshot(o.Apply); err != nil {
			return fmt.Errorf("Could not apply snapshot '%s': %w", o.Apply, snapshotErr(err))
		}
	case del:
		if err := s.DeleteSnapshot(o.Delete); err != nil {
			return fmt.Errorf("Could not delete snapshot '%s': %w", o.Delete, snapshotErr(err))
		}
	}
	return d.Close()
}

// snapshotErr keeps qemu's words for a missing snapshot.
func snapshotErr(err error) error {
	if errors.Is(err, qcow2.ErrSnapshotNotFound) {
		return qcow2.ErrSnapshotNotFound
	}
	return err
}

// snapshotsJSON converts a format's snapshot list to qemu-img's fields.
func snapshotsJSON(sl image.SnapshotLister) []SnapshotJSON {
	var out []SnapshotJSON
	for _, sn := range sl.SnapshotList() {
		js := SnapshotJSON{
			VMClockNsec: sn.VMClockNsec % 1e9, Name: sn.Name, DateSec: sn.DateSec, DateNsec: sn.DateNsec,
			VMClockSec: sn.VMClockNsec / 1e9, ID: sn.ID, VMStateSize: sn.VMStateSize,
		}
		if sn.ICount >= 0 {
			ic := sn.ICount
			js.ICount = &ic
		}
		out = append(out, js)
	}
	return out
}
