package tool

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// ParseSize parses a size or offset the way qemu-img and qemu-io do: a
// decimal number of bytes (a fraction is allowed with a suffix, "1.5M"), or
// a 0x-prefixed hex number, optionally followed by one suffix b/B (bytes),
// k/K, m/M, g/G, t/T, p/P or e/E (powers of 1024). The result must be a whole
// number of bytes in [0, 2^63). Negative numbers are refused.
func ParseSize(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("invalid size %q: empty", s)
	}
	num, mult := s, int64(1)
	switch s[len(s)-1] {
	case 'b', 'B':
		num = s[:len(s)-1]
	case 'k', 'K':
		num, mult = s[:len(s)-1], 1<<10
	case 'm', 'M':
		num, mult = s[:len(s)-1], 1<<20
	case 'g', 'G':
		num, mult = s[:len(s)-1], 1<<30
	case 't', 'T':
		num, mult = s[:len(s)-1], 1<<40
	case 'p', 'P':
		num, mult = s[:len(s)-1], 1<<50
	case 'e', 'E':
		if !strings.HasPrefix(strings.ToLower(s), "0x") { // 0x...e is a hex digit
			num, mult = s[:len(s)-1], 1<<60
		}
	}
	bad := fmt.Errorf("invalid size %q: want a non-negative number of bytes, optionally with a k, M, G, T, P or E suffix", s)
	if num == "" || num[0] == '-' || num[0] == '+' {
		return 0, bad
	}
	if h, ok := strings.CutPrefix(strings.ToLower(num), "0x"); ok {
		v, err := strconv.ParseUint(h, 16, 63)
		if err != nil || h == "" {
			return 0, bad
		}
		if v > uint64(math.MaxInt64/mult) {
			return 0, fmt.Errorf("invalid size %q: too large", s)
		}
		return int64(v) * mult, nil
	}
	// Only digits and one '.' reach big.Rat: no exponents or fractions
	// ("1e999999999" would take forever), and at most 40 characters.
	if len(num) > 40 || strings.Count(num, ".") > 1 || strings.Trim(num, "0123456789.") != "" || num == "." {
		return 0, bad
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, bad
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
	}
	v := r.Num()
	if !v.IsInt64() || v.Sign() < 0 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return v.Int64(), nil
}

// FormatSize formats a byte count as qemu-img's human output does
// ("4 MiB", "1.5 MiB", "196 KiB", "0 B"): three significant digits, and the
// next unit once the value would reach 1000.
func FormatSize(v int64) string {
	suffixes := []string{"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}
	_, exp := math.Frexp(float64(v) / (1000.0 / 1024.0))
	i := (exp - 1) / 10
	if i < 0 {
		i = 0
	}
	if i >= len(suffixes) {
		i = len(suffixes) - 1
	}
	div := float64(uint64(1) << (10 * i))
	return cFormatG3(float64(v)/div) + " " + suffixes[i] + "B"
}

// cFormatG3 is C's printf("%0.3g", v) for non-negative v.
func cFormatG3(v float64) string {
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// FormatIOSize formats a byte count as qemu-io's reports do ("4 KiB",
// "1.500 MiB", "512 bytes"): three decimals, dropped when they are ".000".
func FormatIOSize(v float64) string {
	units := []struct {
		size   float64
		suffix string
	}{
		{1 << 60, " EiB"}, {1 << 50, " PiB"}, {1 << 40, " TiB"},
		{1 << 30, " GiB"}, {1 << 20, " MiB"}, {1 << 10, " KiB"},
	}
	var s, suffix string
	for _, u := range units {
		if v >= u.size {
			s, suffix = strconv.FormatFloat(v/u.size, 'f', 3, 64), u.suffix
			break
		}
	}
	if suffix == "" {
		s, suffix = strconv.FormatFloat(v, 'f', 6, 64), " bytes"
	}
	if i := strings.Index(s, ".000"); i >= 0 {
		return s[:i] + suffix
	}
	return s + suffix
}
