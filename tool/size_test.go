package tool

import "testing"

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"0": 0, "512": 512, "4096b": 4096, "1k": 1024, "1K": 1024, "1M": 1 << 20,
		"1m": 1 << 20, "2G": 2 << 30, "1T": 1 << 40, "1P": 1 << 50, "1E": 1 << 60,
		"1.5M": 3 << 19, "0x1000": 4096, "0x10k": 16 << 10, "0xe": 14,
		"8191E": -1, // placeholder replaced below
	}
	delete(good, "8191E")
	for in, want := range good {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "+1", "1x", "k", "1.5", "0.1k", "8E", "99999999999999999999",
		"1e3", "0x", "1/2", "1MB", " 1", "0xfffffffffffffffff"} {
		if v, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, v)
		}
	}
}

func TestFormatSize(t *testing.T) {
	cases := map[int64]string{
		0: "0 B", 1: "1 B", 999: "999 B", 1000: "0.977 KiB", 1024: "1 KiB",
		1572864: "1.5 MiB", 200704: "196 KiB", 4194304: "4 MiB", 1 << 30: "1 GiB",
		16 << 30: "16 GiB",
	}
	for in, want := range cases {
		if got := FormatSize(in); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestFormatIOSize(t *testing.T) {
	cases := map[float64]string{
		0: "0 bytes", 3: "3 bytes", 4096: "4 KiB", 1 << 20: "1 MiB",
		1.5 * (1 << 20): "1.500 MiB", 3725.0: "3.638 KiB",
	}
	for in, want := range cases {
		if got := FormatIOSize(in); got != want {
			t.Errorf("FormatIOSize(%v) = %q, want %q", in, got, want)
		}
	}
}
