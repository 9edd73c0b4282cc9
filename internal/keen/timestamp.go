package keen

import (
	"math"
	"math/big"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"destination-keen/internal/jsonx"
)

// Epoch thresholds, as the Java connector draws them: a number of at least
// 1e9 is epoch seconds (2001-09-09 on), above 1e10 epoch milliseconds; below
// 1e9 it is taken for an ID, not a time.
const (
	minEpochSeconds = 1e9
	minEpochMillis  = 1e10
)

// ParseEpoch reads a number as epoch seconds or milliseconds.
func ParseEpoch(f float64) (time.Time, bool) {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0) || f < minEpochSeconds:
		return time.Time{}, false
	case f > minEpochMillis:
		sec := math.Floor(f / 1e3)
		ms := f - sec*1e3
		return inRange(time.Unix(int64(sec), int64(math.Round(ms*1e6))).UTC())
	default:
		sec := math.Floor(f)
		return inRange(time.Unix(int64(sec), int64(math.Round((f-sec)*1e9))).UTC())
	}
}

// maxEpoch bounds the numbers read as times: epoch milliseconds of the year
// 9999 are about 2.5e14.
const maxEpoch = 1e15

// parseEpochText reads the text of a number as epoch seconds or
// milliseconds (ParseEpoch's thresholds), exactly: a fraction's digits are
// the instant's (1674485468.853 is .853 s, where a float64 gives
// .852999926). Whole numbers, the common case, take no allocation.
func parseEpochText(s string) (time.Time, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < minEpochSeconds || f >= maxEpoch {
		return time.Time{}, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > minEpochMillis {
			return inRange(time.UnixMilli(n).UTC())
		}
		return inRange(time.Unix(n, 0).UTC())
	}
	var r big.Rat
	if len(s) > 64 {
		return ParseEpoch(f) // a needlessly long spelling: float64 precision
	}
	if _, ok := r.SetString(s); !ok {
		return ParseEpoch(f)
	}
	unit := big.NewInt(1e9) // nanoseconds per unit
	if r.Cmp(big.NewRat(minEpochMillis, 1)) > 0 {
		unit = big.NewInt(1e6)
	}
	// Nanoseconds, rounded half up (the value is positive).
	num := new(big.Int).Mul(r.Num(), unit)
	num.Mul(num, big.NewInt(2)).Add(num, r.Denom())
	ns := num.Quo(num, new(big.Int).Mul(r.Denom(), big.NewInt(2)))
	sec, nsec := new(big.Int).QuoRem(ns, big.NewInt(1e9), new(big.Int))
	return inRange(time.Unix(sec.Int64(), nsec.Int64()).UTC())
}

// inRange keeps times that ISO-8601 can write with four year digits.
func inRange(t time.Time) (time.Time, bool) {
	if y := t.Year(); y < 1 || y > 9999 {
		return time.Time{}, false
	}
	return t, true
}

// Layouts tried for cursor strings, most common first. A value without a
// zone is UTC.
var layouts = []string{
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999 -0700",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
	"2006-01-02",
	"2006/01/02 15:04:05.999999999",
	"2006/01/02 15:04",
	"2006/01/02",
	time.RFC1123Z,
	time.RFC1123,
	time.RFC850,
	time.RFC822Z,
	time.RFC822,
	time.ANSIC,
	time.UnixDate,
	time.RubyDate,
	"Mon, 02 Jan 2006 15:04:05",
	"Mon, 2 Jan 2006 15:04:05",
	"Mon, 2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05 MST",
	"2 Jan 2006 15:04:05",
	"January 2, 2006 15:04:05",
	"January 2, 2006",
	"Jan 2, 2006",
	"20060102T150405Z0700",
}

// utcSuffixes are zone words that mean UTC at the end of a value.
var utcSuffixes = []string{" utc", " gmt", " z"}

// Parser turns cursor values into times. It remembers which layout matched
// last, since a stream's values share one format; it is safe for concurrent
// use.
type Parser struct {
	last atomic.Int32
}

// Parse reads a cursor value (the raw JSON) as a time: a number, a string
// holding a number, or a date string in one of the common layouts.
func (p *Parser) Parse(raw []byte) (time.Time, bool) {
	switch jsonx.KindOf(raw) {
	case jsonx.Number:
		return parseEpochText(string(raw))
	case jsonx.String:
		s, err := jsonx.Unquote(raw)
		if err != nil {
			return time.Time{}, false
		}
		return p.ParseString(s)
	}
	return time.Time{}, false
}

// ParseString reads a string cursor value.
func (p *Parser) ParseString(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 64 {
		return time.Time{}, false
	}
	if t, ok := parseRFC3339(s); ok {
		return inRange(t)
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return parseEpochText(s)
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return inRange(t.UTC())
	}
	zoneless := s
	lower := strings.ToLower(s)
	for _, suf := range utcSuffixes {
		if strings.HasSuffix(lower, suf) {
			zoneless = strings.TrimSpace(s[:len(s)-len(suf)])
			break
		}
	}
	last := int(p.last.Load())
	if t, ok := tryLayout(layouts[last], zoneless); ok {
		return t, true
	}
	for i, l := range layouts {
		if i == last {
			continue
		}
		if t, ok := tryLayout(l, zoneless); ok {
			p.last.Store(int32(i))
			return t, true
		}
	}
	return time.Time{}, false
}

func tryLayout(layout, s string) (time.Time, bool) {
	t, err := time.Parse(layout, s)
	if err != nil {
		return time.Time{}, false
	}
	if strings.Contains(layout, "MST") {
		// time.Parse gives an unknown abbreviation (PST, CEST) a zero
		// offset; only trust the ones that mean UTC.
		if name, _ := t.Zone(); name != "UTC" && name != "GMT" {
			return time.Time{}, false
		}
	}
	return inRange(t.UTC())
}

// AppendTimestamp appends t as Keen's ISO-8601: UTC, ending in Z, with a
// fraction only when it is not zero, in groups of three digits as Java's
// Instant writes it (12:45:13.151Z, 01:09:49.200Z). Written by hand: it runs
// once per record, and BenchmarkAppendTimestamp measures it three times as
// fast as package time's AppendFormat giving the same text.
func AppendTimestamp(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	switch ns := t.Nanosecond(); {
	case ns == 0:
	case ns%1e6 == 0:
		b = append(b, '.')
		b = appendDigits(b, ns/1e6, 3)
	case ns%1e3 == 0:
		b = append(b, '.')
		b = appendDigits(b, ns/1e3, 6)
	default:
		b = append(b, '.')
		b = appendDigits(b, ns, 9)
	}
	return append(b, 'Z')
}

// appendDigits appends v (non-negative) zero-padded to width digits.
func appendDigits(b []byte, v, width int) []byte {
	var buf [9]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, buf[:width]...)
}

// parseRFC3339 reads RFC 3339, the form most sources write, with package
// time, after turning the lowercase t and z and the space that RFC 3339
// allows into the T and Z package time wants. (A hand-written parser was
// measured no faster than time.Parse and was dropped.)
func parseRFC3339(s string) (time.Time, bool) {
	if len(s) > 10 && (s[10] == 't' || s[10] == ' ') || strings.HasSuffix(s, "z") {
		b := []byte(s)
		if len(b) > 10 && (b[10] == 't' || b[10] == ' ') {
			b[10] = 'T'
		}
		if b[len(b)-1] == 'z' {
			b[len(b)-1] = 'Z'
		}
		s = string(b)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}
