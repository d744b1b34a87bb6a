package iscsi

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/thinblk/thinblk/protocol/mem"
	"github.com/thinblk/thinblk/scsi"
)

// loginBytes is a well-formed login request that goes straight to full
// feature phase, followed by a READ(16) command: the seed of the fuzzers.
func loginBytes() []byte {
	var b [bhsLen]byte
	b[0] = opLoginReq | flagImmediate
	b[1] = 0x80 | stageOperational<<2 | stageFullFeature
	binary.BigEndian.PutUint32(b[16:], 1)
	data := encodeText(nil, []kv{{"InitiatorName", "iqn.2026-01.fuzz:i"}, {"TargetName", testIQN},
		{"SessionType", "Normal"}, {"HeaderDigest", "None"}, {"DataDigest", "None"}, {"MaxRecvDataSegmentLength", "8192"}})
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	writePDU(w, &outPDU{bhs: b, data: data}, false, false)
	var c [bhsLen]byte
	c[0] = opSCSICmd
	c[1] = 0xC0
	binary.BigEndian.PutUint32(c[20:], 4096)
	copy(c[32:], read16(0, 8))
	writePDU(w, &outPDU{bhs: c}, false, false)
	w.Flush()
	return out.Bytes()
}

// FuzzPDU feeds arbitrary bytes to the PDU decoder, with and without
// digests: it must never panic nor accept a data segment over its limit.
func FuzzPDU(f *testing.F) {
	f.Add(loginBytes(), false)
	f.Add(loginBytes(), true)
	f.Add(make([]byte, 48), false)
	f.Fuzz(func(t *testing.T, in []byte, digests bool) {
		pr := pduReader{r: bufio.NewReader(bytes.NewReader(in)), headerDigest: digests, dataDigest: digests, maxData: 8192}
		var p pdu
		for i := 0; i < 64; i++ {
			if err := pr.read(&p, nil); err != nil {
				return
			}
			if len(p.data) > 8192 || len(p.data) != p.dataLen() || len(p.ahs) != p.ahsLen() {
				t.Fatalf("data %d (header %d), ahs %d", len(p.data), p.dataLen(), len(p.ahs))
			}
			if pairs, err := parseText(p.data); err == nil && len(pairs) > maxKeys {
				t.Fatalf("%d keys", len(pairs))
			}
		}
	})
}

// FuzzSession plays an arbitrary byte stream as the initiator side of one
// connection: the session must end (the stream ends) without panicking.
func FuzzSession(f *testing.F) {
	f.Add(loginBytes())
	f.Add(append(loginBytes(), make([]byte, 100)...))
	lu, err := scsi.New(mem.New(1<<20), scsi.Config{})
	if err != nil {
		f.Fatal(err)
	}
	luns := scsi.NewTarget()
	luns.Add(0, lu)
	srv := &Server{Targets: []*Target{{Name: testIQN, LUNs: luns}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			newSession(srv, server).serve()
			close(done)
		}()
		go io.Copy(io.Discard, client)
		client.SetDeadline(time.Now().Add(5 * time.Second))
		client.Write(in)
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("session did not end after its connection closed")
		}
	})
}
