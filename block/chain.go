package block

// ChainStatus returns the status of a run starting at off (0 < Len <= n),
// merged down d's backing chain ([Backed]): the first node in which the run is
// present answers, and Depth says which (0 = d). A run that no node describes
// gets the status of "unallocated" (neither Data nor Zero) and the depth of the
// last node asked; it reads as zeros. A run past the end of a shorter backing
// node reads as zeros and is reported as Zero at that node's depth.
//
// base, when non-nil, stops the walk: base and the nodes below it are not
// asked (as for `convert -B` or `commit`), and a run unallocated above base is
// reported as unallocated.
func ChainStatus(d Driver, off, n int64, base Driver) (Extent, error) {
	depth := 0
	for {
		e, err := d.BlockStatus(off, n)
		if err != nil {
			return Extent{}, err
		}
		e.Depth = depth
		if e.Status.Present() {
			return e, nil
		}
		b, ok := d.(Backed)
		if !ok {
			return e, nil
		}
		next := b.Backing()
		if next == nil || next == base {
			return e, nil
		}
		n = e.Len
		depth++
		if off >= next.Size() {
			return Extent{Off: off, Len: n, Status: Zero, HostOffset: -1, Depth: depth}, nil
		}
		n = min(n, next.Size()-off)
		d = next
	}
}
