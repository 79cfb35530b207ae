// Package bytesize reads and writes sizes in bytes as people write them
// in configuration files: "2GiB", "512 MB".
package bytesize

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnits are the units Parse accepts, lower-cased: decimal (kB,
// MB, GB, TB) and binary (KiB, MiB, GiB, TiB).
var sizeUnits = map[string]int64{
	"b": 1, "": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// maxSize bounds sizes so that arithmetic on them cannot overflow.
const maxSize = 1 << 60

// Parse parses a size in bytes: a number, optionally with a fraction,
// and a unit: B, kB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB
// (powers of 1024), case-insensitively, with optional space between
// ("2GiB", "512 MB", "1.5GiB"); a bare number is bytes. The result is
// rounded down to whole bytes.
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, errors.New("no number")
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("unknown unit %s (want B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)", strconv.Quote(t[i:]))
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > maxSize/mult {
			return 0, errors.New("too large")
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("bad number %s", strconv.Quote(num))
	}
	v := f * float64(mult)
	if v > maxSize {
		return 0, errors.New("too large")
	}
	return int64(v), nil
}

// Format shows n bytes in the largest binary unit it reaches, with at
// most one decimal: "2GiB", "512MiB", "137.4MiB", "900B".
func Format(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	f, u := float64(n), 0
	for f >= 1024 && u < len(units)-1 {
		f /= 1024
		u++
	}
	return strconv.FormatFloat(math.Floor(f*10)/10, 'f', -1, 64) + units[u]
}
