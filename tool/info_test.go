package tool

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/thinblk/thinblk/internal/testutil"
)

type fakeSpecific struct {
	Compat string `json:"compat"`
}

func (fakeSpecific) HumanFields() [][2]string { return [][2]string{{"compat", "1.1"}} }

func TestInfoHumanAndJSONShapes(t *testing.T) {
	actual, hw, ic := int64(331776), int64(393216), int64(0)
	in := ImageInfo{
		Snapshots: []SnapshotJSON{{ICount: &ic, Name: "s1", DateSec: 1795718295, DateNsec: 6682000,
			VMClockSec: 3725, VMClockNsec: 5_000_000, ID: "1", VMStateSize: 1536}},
		BackingFilenameFormat:  "raw",
		VirtualSize:            6291456,
		Filename:               "dir/top.qcow2",
		ClusterSize:            65536,
		Format:                 "qcow2",
		ActualSize:             &actual,
		HighestAllocatedOffset: &hw,
		FormatSpecific:         &FormatSpecific{Type: "qcow2", Data: fakeSpecific{"1.1"}},
		FullBackingFilename:    "dir/base.raw",
		BackingFilename:        "base.raw",
		DirtyFlag:              true,
		specific:               fakeSpecific{"1.1"},
	}
	var b bytes.Buffer
	writeHumanInfo(&b, in)
	date := time.Unix(1795718295, 0).Format("2006-01-02 15:04:05")
	want := "image: dir/top.qcow2\n" +
		"file format: qcow2\n" +
		"virtual size: 6 MiB (6291456 bytes)\n" +
		"disk size: 324 KiB\n" +
		"highest allocated offset: 384 KiB (393216 bytes)\n" +
		"cluster_size: 65536\n" +
		"cleanly shut down: no\n" +
		"backing file: base.raw (actual path: dir/base.raw)\n" +
		"backing file format: raw\n" +
		"Snapshot list:\n" +
		"ID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT\n" +
		"1         s1                1.5 KiB " + date + " 01:02:05.005          0\n" +
		"Format specific information:\n" +
		"    compat: 1.1\n"
	if b.String() != want {
		t.Fatalf("human info:\n%s\nwant:\n%s", b.String(), want)
	}

	j, err := json.MarshalIndent(in, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{
    "snapshots": [
        {
            "icount": 0,
            "vm-clock-nsec": 5000000,
            "name": "s1",
            "date-sec": 1795718295,
            "date-nsec": 6682000,
            "vm-clock-sec": 3725,
            "id": "1",
            "vm-state-size": 1536
        }
    ],
    "backing-filename-format": "raw",
    "virtual-size": 6291456,
    "filename": "dir/top.qcow2",
    "cluster-size": 65536,
    "format": "qcow2",
    "actual-size": 331776,
    "highest-allocated-offset": 393216,
    "format-specific": {
        "type": "qcow2",
        "data": {
            "compat": "1.1"
        }
    },
    "full-backing-filename": "dir/base.raw",
    "backing-filename": "base.raw",
    "dirty-flag": true
}`
	if string(j) != wantJSON {
		t.Fatalf("JSON info:\n%s\nwant:\n%s", j, wantJSON)
	}
}

// TestInfoQcow2SnapshotsMatchQemuImg: internal snapshots appear at the top
// level ("snapshots" and the "Snapshot list:" table) exactly as qemu-img
// info prints them, and not inside format-specific.
func TestInfoQcow2SnapshotsMatchQemuImg(t *testing.T) {
	testutil.NeedTool(t, "qemu-img", "qemu-io")
	name := filepath.Join(t.TempDir(), "s.qcow2")
	testutil.MustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", name, "1M")
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 1 0 64k", name)
	testutil.MustRun(t, "qemu-img", "snapshot", "-c", "first", name)
	testutil.MustRun(t, "qemu-io", "-f", "qcow2", "-c", "write -P 2 0 64k", name)
	testutil.MustRun(t, "qemu-img", "snapshot", "-c", "second one", name)

	var human bytes.Buffer
	if err := Info(&human, name, InfoOptions{}); err != nil {
		t.Fatal(err)
	}
	table := func(s string) string {
		i := strings.Index(s, "Snapshot list:")
		j := strings.Index(s, "Format specific information:")
		if i < 0 || j < i {
			return ""
		}
		return s[i:j]
	}
	want := table(testutil.MustRun(t, "qemu-img", "info", name))
	if want == "" || table(human.String()) != want {
		t.Fatalf("snapshot table:\n%s\nqemu-img:\n%s", table(human.String()), want)
	}

	var js bytes.Buffer
	if err := Info(&js, name, InfoOptions{Output: "json"}); err != nil {
		t.Fatal(err)
	}
	var got, ref struct {
		Snapshots      []map[string]any              `json:"snapshots"`
		FormatSpecific struct{ Data map[string]any } `json:"format-specific"`
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(testutil.MustRun(t, "qemu-img", "info", "--output=json", name)), &ref); err != nil {
		t.Fatal(err)
	}
	if len(got.Snapshots) != 2 || !reflect.DeepEqual(got.Snapshots, ref.Snapshots) {
		t.Fatalf("snapshots %v, qemu-img %v", got.Snapshots, ref.Snapshots)
	}
	if _, ok := got.FormatSpecific.Data["snapshots"]; ok {
		t.Fatalf("snapshots inside format-specific: %v", got.FormatSpecific.Data)
	}
}
