package qcow2

import "encoding/binary"

// Refcount block entries are refcountBits wide (1 << refcountOrder). Below
// 8 bits, entries are packed least significant bit first within a byte;
// from 8 bits up they are big-endian integers.

// refcountAt returns entry i of a refcount block.
func refcountAt(blk []byte, i int64, order uint32) uint64 {
	switch order {
	case 0, 1, 2:
		bits := uint(1) << order
		bitPos := uint64(i) * uint64(bits)
		v := blk[bitPos/8] >> (bitPos % 8)
		return uint64(v) & (1<<bits - 1)
	case 3:
		return uint64(blk[i])
	case 4:
		return uint64(binary.BigEndian.Uint16(blk[2*i:]))
	case 5:
		return uint64(binary.BigEndian.Uint32(blk[4*i:]))
	default:
		return binary.BigEndian.Uint64(blk[8*i:])
	}
}

// setRefcountAt stores v (which must fit in the entry width) in entry i.
func setRefcountAt(blk []byte, i int64, order uint32, v uint64) {
	switch order {
	case 0, 1, 2:
		bits := uint(1) << order
		bitPos := uint64(i) * uint64(bits)
		mask := byte(1<<bits-1) << (bitPos % 8)
		blk[bitPos/8] = blk[bitPos/8]&^mask | byte(v<<(bitPos%8))&mask
	case 3:
		blk[i] = byte(v)
	case 4:
		binary.BigEndian.PutUint16(blk[2*i:], uint16(v))
	case 5:
		binary.BigEndian.PutUint32(blk[4*i:], uint32(v))
	default:
		binary.BigEndian.PutUint64(blk[8*i:], v)
	}
}

// maxRefcount returns the largest refcount an entry of the order can hold.
func maxRefcount(order uint32) uint64 {
	if order >= 6 {
		return ^uint64(0)
	}
	return 1<<(uint(1)<<order) - 1
}
