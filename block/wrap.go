package block

// Wrapper is implemented by nodes that sit over exactly one inner node and
// pass most requests down to it: the helper wrappers of this package
// ([Align], [WithPolicy]) and filters. Unwrap returns the inner node.
//
// A wrapper also implements [Backed] by returning its inner node's backing
// (nil when the inner node has none), so that [ChainStatus] walks through
// wrappers to the real backing chain.
type Wrapper interface {
	Unwrap() Driver
}

// As finds the first node of type T in the stack d, d.Unwrap(),
// d.Unwrap().Unwrap(), ... (for example the *qcow2 node below a policy and
// an alignment wrapper, for management operations). It does not descend
// into backing nodes.
func As[T any](d Driver) (T, bool) {
	for d != nil {
		if t, ok := d.(T); ok {
			return t, true
		}
		w, ok := d.(Wrapper)
		if !ok {
			break
		}
		d = w.Unwrap()
	}
	var zero T
	return zero, false
}

// BackingOf returns d's backing node, or nil when d has none (d does not
// implement Backed, or its Backing returns nil). Wrappers use it to forward
// Backing.
func BackingOf(d Driver) Driver {
	if b, ok := d.(Backed); ok {
		return b.Backing()
	}
	return nil
}
