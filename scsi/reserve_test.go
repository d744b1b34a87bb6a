package scsi

import (
	"encoding/binary"
	"testing"
)

func prOut(sa, typ byte, key, saKey uint64) ([]byte, []byte) {
	cdb := make([]byte, 10)
	cdb[0], cdb[1], cdb[2] = opPersistentOut, sa, typ
	binary.BigEndian.PutUint32(cdb[5:], 24)
	p := make([]byte, 24)
	binary.BigEndian.PutUint64(p, key)
	binary.BigEndian.PutUint64(p[8:], saKey)
	return cdb, p
}

func as(lu *LU, nexus string, cdb, data []byte) *Command {
	c := &Command{CDB: cdb, DataOut: data, Initiator: nexus}
	lu.Execute(c)
	return c
}

func wantConflict(t *testing.T, c *Command) {
	t.Helper()
	if c.Status != StatusReservationConflict {
		t.Fatalf("CDB % x: status %#x, want RESERVATION CONFLICT", c.CDB, c.Status)
	}
}

func TestSPC2Reservation(t *testing.T) {
	lu, _ := newLU(t, Config{})
	a, b := "iqn.a,i,0x1", "iqn.b,i,0x2"
	reserve6 := []byte{opReserve6, 0, 0, 0, 0, 0}
	release6 := []byte{opRelease6, 0, 0, 0, 0, 0}
	wantGood(t, as(lu, a, reserve6, nil))
	wantConflict(t, as(lu, b, reserve6, nil))
	wantConflict(t, as(lu, b, cdb10(opRead10, 0, 0, 1), nil))
	wantGood(t, as(lu, b, []byte{opInquiry, 0, 0, 0, 36, 0}, nil))
	wantGood(t, as(lu, b, release6, nil)) // not the holder: no effect
	wantConflict(t, as(lu, b, cdb10(opRead10, 0, 0, 1), nil))
	lu.NexusLost(a)
	wantGood(t, as(lu, b, reserve6, nil))
	lu.Reset()
	wantGood(t, as(lu, a, reserve6, nil))
	wantGood(t, as(lu, a, release6, nil))
	wantGood(t, as(lu, b, cdb10(opRead10, 0, 0, 1), nil))
}

func TestPersistentReservation(t *testing.T) {
	lu, _ := newLU(t, Config{})
	a, b, c := "iqn.a,i,0x1", "iqn.b,i,0x2", "iqn.c,i,0x3"
	do := func(nexus string, sa, typ byte, key, saKey uint64) *Command {
		cdb, p := prOut(sa, typ, key, saKey)
		return as(lu, nexus, cdb, p)
	}
	wantGood(t, do(a, 0, 0, 0, 0xA))
	wantGood(t, do(b, 0, 0, 0, 0xB))
	wantConflict(t, do(c, 0, 0, 5, 0xC)) // unregistered with a non-zero key
	wantConflict(t, do(a, 1, prWriteExclusive, 0xB, 0))
	wantGood(t, do(a, 1, prWriteExclusive, 0xA, 0))
	wantConflict(t, do(b, 1, prWriteExclusive, 0xB, 0))
	// Write Exclusive: others read, do not write.
	wantGood(t, as(lu, c, cdb10(opRead10, 0, 0, 1), nil))
	wantConflict(t, as(lu, b, cdb10(opWrite10, 0, 0, 1), make([]byte, 512)))
	wantGood(t, as(lu, a, cdb10(opWrite10, 0, 0, 1), make([]byte, 512)))
	// READ KEYS and READ RESERVATION.
	in := func(sa byte) []byte {
		cmd := as(lu, c, []byte{opPersistentIn, sa, 0, 0, 0, 0, 0, 1, 0, 0}, nil)
		wantGood(t, cmd)
		return cmd.DataIn
	}
	if keys := in(0); binary.BigEndian.Uint32(keys[4:]) != 16 {
		t.Fatalf("READ KEYS % x", keys)
	}
	if rr := in(1); binary.BigEndian.Uint64(rr[8:]) != 0xA || rr[21] != prWriteExclusive {
		t.Fatalf("READ RESERVATION % x", rr)
	}
	// RELEASE with the wrong type; PREEMPT by b takes the reservation.
	wantSense(t, do(a, 2, prExclusiveAccess, 0xA, 0), SenseInvalidRelease)
	wantGood(t, do(b, 4, prExclusiveAccess, 0xB, 0xA))
	wantConflict(t, as(lu, a, cdb10(opRead10, 0, 0, 1), nil)) // a was preempted: unregistered
	if rr := in(1); binary.BigEndian.Uint64(rr[8:]) != 0xB || rr[21] != prExclusiveAccess {
		t.Fatalf("after PREEMPT: % x", rr)
	}
	// Unregistering the holder ends the reservation.
	wantGood(t, do(b, 0, 0, 0xB, 0))
	wantGood(t, as(lu, a, cdb10(opRead10, 0, 0, 1), nil))
	if rr := in(1); binary.BigEndian.Uint32(rr[4:]) != 0 {
		t.Fatalf("reservation left after its holder unregistered: % x", rr)
	}
	// A RESERVE(6) conflicts with registrations.
	wantGood(t, do(c, 6, 0, 0, 0xC))
	wantConflict(t, as(lu, a, []byte{opReserve6, 0, 0, 0, 0, 0}, nil))
	wantGood(t, do(c, 3, 0, 0xC, 0)) // CLEAR
	wantGood(t, as(lu, a, []byte{opReserve6, 0, 0, 0, 0, 0}, nil))
}
