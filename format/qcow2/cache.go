package qcow2

import "container/list"

// tableCache is an LRU cache of cluster-sized metadata tables (L2 tables or
// refcount blocks) keyed by host offset. It is not safe for concurrent use:
// the image's metadata lock guards it.
//
// A slice returned by get or create stays valid only until the next call
// on the same cache (which may evict it): callers read or change it and
// call markDirty before touching the cache again.
type tableCache struct {
	tableSize int
	capacity  int
	lru       *list.List // of *cachedTable, front = most recently used
	byOffset  map[int64]*list.Element
	// load reads a table from the file; writeback writes a dirty one
	// before it is evicted or flushed.
	load      func(off int64, p []byte) error
	writeback func(off int64, p []byte) error
}

type cachedTable struct {
	off   int64
	data  []byte
	dirty bool
}

func newTableCache(tableSize, capacity int, load, writeback func(int64, []byte) error) *tableCache {
	if capacity < 4 {
		capacity = 4
	}
	return &tableCache{
		tableSize: tableSize,
		capacity:  capacity,
		lru:       list.New(),
		byOffset:  make(map[int64]*list.Element),
		load:      load,
		writeback: writeback,
	}
}

// get returns the table at off, loading it on a miss.
func (c *tableCache) get(off int64) ([]byte, error) {
	if el, ok := c.byOffset[off]; ok {
		c.lru.MoveToFront(el)
		return el.Value.(*cachedTable).data, nil
	}
	t, err := c.slot(off)
	if err != nil {
		return nil, err
	}
	if err := c.load(off, t.data); err != nil {
		c.drop(off)
		return nil, err
	}
	return t.data, nil
}

// create returns a zeroed, dirty table for off without reading the file.
func (c *tableCache) create(off int64) ([]byte, error) {
	if el, ok := c.byOffset[off]; ok {
		t := el.Value.(*cachedTable)
		clear(t.data)
		t.dirty = true
		c.lru.MoveToFront(el)
		return t.data, nil
	}
	t, err := c.slot(off)
	if err != nil {
		return nil, err
	}
	t.dirty = true
	return t.data, nil
}

// slot makes room and inserts an (unloaded) entry for off.
func (c *tableCache) slot(off int64) (*cachedTable, error) {
	var buf []byte
	for c.lru.Len() >= c.capacity {
		el := c.lru.Back()
		t := el.Value.(*cachedTable)
		if t.dirty {
			if err := c.writeback(t.off, t.data); err != nil {
				return nil, err
			}
			t.dirty = false
		}
		c.lru.Remove(el)
		delete(c.byOffset, t.off)
		buf = t.data
	}
	if buf == nil {
		buf = make([]byte, c.tableSize)
	} else {
		clear(buf)
	}
	t := &cachedTable{off: off, data: buf}
	c.byOffset[off] = c.lru.PushFront(t)
	return t, nil
}

func (c *tableCache) drop(off int64) {
	if el, ok := c.byOffset[off]; ok {
		c.lru.Remove(el)
		delete(c.byOffset, off)
	}
}

// markDirty records that the table at off was changed.
func (c *tableCache) markDirty(off int64) {
	if el, ok := c.byOffset[off]; ok {
		el.Value.(*cachedTable).dirty = true
	}
}

// hasDirty reports whether any table waits to be written.
func (c *tableCache) hasDirty() bool {
	for el := c.lru.Front(); el != nil; el = el.Next() {
		if el.Value.(*cachedTable).dirty {
			return true
		}
	}
	return false
}

// flush writes every dirty table (it does not flush the file).
func (c *tableCache) flush() error {
	for el := c.lru.Back(); el != nil; el = el.Prev() {
		t := el.Value.(*cachedTable)
		if !t.dirty {
			continue
		}
		if err := c.writeback(t.off, t.data); err != nil {
			return err
		}
		t.dirty = false
	}
	return nil
}

// invalidate forgets every table without writing (after a repair rewrote
// metadata underneath).
func (c *tableCache) invalidate() {
	c.lru.Init()
	clear(c.byOffset)
}
