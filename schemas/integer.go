package schemas

import (
	"bytes"
	"fmt"
	"math/big"
	"strconv"
)

// ParseInteger reads a JSON number that is a whole number, as JSON Schema
// counts integers: 1700000000000, 1700000000000.0 and 1.7e12 alike. It
// lives here, with the schemas, because the generated types use it (through
// Integer), and gen/ imports nothing of internal/.
func ParseInteger(raw []byte) (int64, bool) {
	if v, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return v, true
	}
	if len(raw) == 0 || len(raw) > 64 || raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return 0, false
	}
	// An exponent beyond ±30 is no plausible integer here, and big.Rat
	// would spend time and memory on 10 to its power.
	if i := bytes.IndexAny(raw, "eE"); i >= 0 {
		exp, err := strconv.Atoi(string(raw[i+1:]))
		if err != nil || exp > 30 || exp < -30 {
			return 0, false
		}
	}
	var r big.Rat
	if _, ok := r.SetString(string(raw)); !ok || !r.IsInt() || !r.Num().IsInt64() {
		return 0, false
	}
	return r.Num().Int64(), true
}

// Integer is an int64 that decodes from any JSON number that is a whole
// number (3, 3.0, 3e0), as JSON Schema's integer type does, and encodes as
// digits. The generated protocol types use it for every integer member.
type Integer int64

// UnmarshalJSON reads a whole number.
func (n *Integer) UnmarshalJSON(b []byte) error {
	v, ok := ParseInteger(b)
	if !ok {
		return fmt.Errorf("%.40s is not a whole number that fits in 64 bits", b)
	}
	*n = Integer(v)
	return nil
}

// MarshalJSON writes the number's digits.
func (n Integer) MarshalJSON() ([]byte, error) {
	return strconv.AppendInt(nil, int64(n), 10), nil
}
