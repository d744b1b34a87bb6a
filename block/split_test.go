package block_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/thinblk/thinblk/block"
)

func TestSplitRequest(t *testing.T) {
	type piece struct{ off, n int64 }
	for _, tc := range []struct {
		off, n, max int64
		want        []piece
	}{
		{0, 10, 0, []piece{{0, 10}}},
		{0, 10, 10, []piece{{0, 10}}},
		{5, 10, 4, []piece{{5, 4}, {9, 4}, {13, 2}}},
		{0, 8, 4, []piece{{0, 4}, {4, 4}}},
		{7, 0, 4, []piece{{7, 0}}},           // zero length: passed on once
		{-1, 3, 2, []piece{{-1, 2}, {1, 1}}}, // not validated here
	} {
		var got []piece
		err := block.SplitRequest(tc.off, tc.n, tc.max, func(off, n int64) error {
			got = append(got, piece{off, n})
			return nil
		})
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitRequest(%d, %d, %d) = %v, %v; want %v", tc.off, tc.n, tc.max, got, err, tc.want)
		}
	}
	boom := errors.New("boom")
	calls := 0
	err := block.SplitRequest(0, 100, 10, func(off, n int64) error {
		calls++
		if off == 30 {
			return boom
		}
		return nil
	})
	if err != boom || calls != 4 {
		t.Fatalf("stop at first error: err %v after %d calls, want boom after 4", err, calls)
	}
}
