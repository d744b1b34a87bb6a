package testutil

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// Seed returns the seed for a random test: THINBLK_SEED when set (a decimal
// int64), else the current time in nanoseconds. It logs the seed and how to
// replay it. An unparsable THINBLK_SEED fails the test.
func Seed(t testing.TB) int64 {
	t.Helper()
	var seed int64
	if s := os.Getenv("THINBLK_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("THINBLK_SEED=%q: %v", s, err)
		}
		seed = v
	} else {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (replay with THINBLK_SEED=%d)", seed, seed)
	return seed
}
