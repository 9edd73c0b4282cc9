package keen

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"destination-keen/internal/jsonx"
	"destination-keen/internal/keen/keentest"
	"destination-keen/tools/keenlocal/emulator"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestConform(t *testing.T) {
	long := strings.Repeat("n", 300)
	tests := []struct {
		name, in, want string
		rules          []Rule
	}{
		{"follows the rules", `{"a":1,"b":{"c":[1,"x",null]},"keen":{"addons":[{"x":1}]}}`, `{"a":1,"b":{"c":[1,"x",null]},"keen":{"addons":[{"x":1}]}}`, nil},
		{"spacing kept", "{ \"a\" : 1 ,\n\"b\":[ 1 ] }", "{ \"a\" : 1 ,\n\"b\":[ 1 ] }", nil},
		{"dot", `{"ad_metrics.cost":1}`, `{"ad_metrics_cost":1}`, []Rule{RuleDotName}},
		{"dollar", `{"$insert_id":"x"}`, `{"_insert_id":"x"}`, []Rule{RuleDollarName}},
		{"two dollars", `{"$$x":1}`, `{"_$x":1}`, []Rule{RuleDollarName}},
		{"empty", `{"":1}`, `{"_":1}`, []Rule{RuleEmptyName}},
		{"escaped dot", `{"a\u002eb":1}`, `{"a_b":1}`, []Rule{RuleDotName}},
		{"escaped name that follows the rules", `{"caf\u00e9":1}`, `{"caf\u00e9":1}`, nil},
		{"collision", `{"a.b":1,"a_b":2}`, `{"a_b_2":1,"a_b":2}`, []Rule{RuleDotName}},
		{"collision twice", `{"a.b":1,"a$b":0,"a_b":2,"a_b_2":3,"a.b":4}`, `{"a_b_3":1,"a$b":0,"a_b":2,"a_b_2":3,"a_b_4":4}`, []Rule{RuleDotName, RuleDotName}},
		{"nested names", `{"x":{"y.z":{"$w":1}}}`, `{"x":{"y_z":{"_w":1}}}`, []Rule{RuleDotName, RuleDollarName}},
		{"array of objects", `{"a":[{"b":1}, 2]}`, `{"a":"[{\"b\":1}, 2]"}`, []Rule{RuleNestedArray}},
		{"array of arrays", `{"a":[[1],[2]]}`, `{"a":"[[1],[2]]"}`, []Rule{RuleNestedArray}},
		{"array text exactly as received", `{"a":[{"n":18446744073709551615,"s":"\"\\\n\u00e9"}]}`, `{"a":"[{\"n\":18446744073709551615,\"s\":\"\\\"\\\\\\n\\u00e9\"}]"}`, []Rule{RuleNestedArray}},
		{"names inside arrays are the array's text", `{"a":[{"b.c":1}]}`, `{"a":"[{\"b.c\":1}]"}`, []Rule{RuleNestedArray}},
		{"array under a renamed name", `{"a.b":{"c":[{}]}}`, `{"a_b":{"c":"[{}]"}}`, []Rule{RuleDotName, RuleNestedArray}},
		{"keen member left alone", `{"keen":{"addons":[{"a.b":1}],"$x":1},"a":[{}]}`, `{"keen":{"addons":[{"a.b":1}],"$x":1},"a":"[{}]"}`, []Rule{RuleNestedArray}},
		{"keen below the top is a property", `{"x":{"keen":{"addons":[{}]}}}`, `{"x":{"keen":{"addons":"[{}]"}}}`, []Rule{RuleNestedArray}},
		{"255 bytes", `{"` + long[:255] + `":1}`, `{"` + long[:255] + `":1}`, nil},
		{"256 bytes", `{"` + long[:256] + `":1}`, `{"` + long[:246] + `_` + fnvHex(long[:256]) + `":1}`, []Rule{RuleLongName}},
		{"numbers a double holds", `{"a":-0,"b":1e-400,"c":1.7976931348623157e308,"d":[2E3,-0.0]}`, `{"a":-0,"b":1e-400,"c":1.7976931348623157e308,"d":[2E3,-0.0]}`, nil},
		{"number beyond a double", `{"a":1e400,"b":{"c":-2E+308}}`, `{"a":"1e400","b":{"c":"-2E+308"}}`, []Rule{RuleNumberRange, RuleNumberRange}},
		{"309 digits", `{"a":` + strings.Repeat("9", 309) + `}`, `{"a":"` + strings.Repeat("9", 309) + `"}`, []Rule{RuleNumberRange}},
		{"in an array, once per array", `{"a":[1, 1e999 ,"x\ud800",2e999,"\udc00"]}`, `{"a":[1, "1e999" ,"x\ufffd","2e999","\ufffd"]}`, []Rule{RuleNumberRange, RuleSurrogateValue}},
		{"in an array of objects, text", `{"a":[{"b":1e400,"c":"\ud800"}]}`, `{"a":"[{\"b\":1e400,\"c\":\"\\ud800\"}]"}`, []Rule{RuleNestedArray}},
		{"lone surrogate", `{"a":"\ud83d\ude00 then \ud83d","b":"\ud83d\ude00"}`, `{"a":"\ud83d\ude00 then \ufffd","b":"\ud83d\ude00"}`, []Rule{RuleSurrogateValue}},
		{"lone surrogate in a name", `{"a\udc00":1}`, "{\"a\ufffd\":1}", []Rule{RuleSurrogateName}},
		{"lone surrogate in a name taken", `{"a\udc00":1,"a\ufffd":2}`, "{\"a\ufffd_2\":1,\"a\\ufffd\":2}", []Rule{RuleSurrogateName}},
		{"lone surrogate and a dot", `{"a.\ud800":1}`, "{\"a_\ufffd\":1}", []Rule{RuleDotName}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := jsonx.Valid([]byte(tt.in)); err != nil {
				t.Fatalf("bad test input: %v", err)
			}
			out, changes := Conform(nil, []byte(tt.in))
			if string(out) != tt.want {
				t.Fatalf("got  %s\nwant %s", out, tt.want)
			}
			var rules []Rule
			for _, c := range changes {
				rules = append(rules, c.Rule)
			}
			if !slices.Equal(rules, tt.rules) {
				t.Fatalf("rules %v, want %v", rules, tt.rules)
			}
			checkConformed(t, []byte(tt.in), out, changes)
		})
	}
}

func fnvHex(s string) string {
	n := FixName(s)
	return n[len(n)-8:]
}

func TestFixName(t *testing.T) {
	twoByte := strings.Repeat("é", 150) // 300 bytes
	tests := []struct{ in, want string }{
		{"ok", "ok"},
		{"a.b.c", "a_b_c"},
		{"$a.b", "_a_b"},
		{".a", "_a"},
		{"", "_"},
		{"a$", "a$"},
	}
	for _, tt := range tests {
		if got := FixName(tt.in); got != tt.want {
			t.Errorf("FixName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	long := FixName(twoByte)
	if len(long) > MaxPropertyName || !strings.HasPrefix(long, strings.Repeat("é", 123)+"_") || BrokenNameRule(long) != 0 {
		t.Errorf("FixName of 300 bytes = %q (%d bytes)", long, len(long))
	}
	if a, b := FixName(strings.Repeat("x", 300)+"a"), FixName(strings.Repeat("x", 300)+"b"); a == b {
		t.Errorf("two long names that share their start got one name %q", a)
	}
	taken := map[string]bool{strings.Repeat("y", 255): true}
	if got := freeName(strings.Repeat("y", 255), taken); len(got) > MaxPropertyName || !strings.HasSuffix(got, "_2") {
		t.Errorf("freeName kept a long name over the limit: %d bytes", len(got))
	}
}

// TestFixNameLongHash: a name of 256 bytes or more keeps its first 246
// bytes after the other fixes and gets "_" and the FNV-1a (32-bit, hex) of
// the original name, computed here apart from the code: two originals that
// the fixes make alike ("a.b…" and "a_b…", "$x…" and "_x…") keep apart.
func TestFixNameLongHash(t *testing.T) {
	fnv1a := func(s string) string {
		h := uint32(2166136261)
		for i := 0; i < len(s); i++ {
			h ^= uint32(s[i])
			h *= 16777619
		}
		return fmt.Sprintf("%08x", h)
	}
	xs := strings.Repeat("x", 300)
	tests := []struct{ in, want string }{
		{"a.b" + xs, "a_b" + xs[:243] + "_" + fnv1a("a.b"+xs)},
		{"a_b" + xs, "a_b" + xs[:243] + "_" + fnv1a("a_b"+xs)},
		{"$x" + xs, "_x" + xs[:244] + "_" + fnv1a("$x"+xs)},
		{"_x" + xs, "_x" + xs[:244] + "_" + fnv1a("_x"+xs)},
		{xs[:100] + ".é" + xs, xs[:100] + "_é" + xs[:143] + "_" + fnv1a(xs[:100]+".é"+xs)},
		{xs[:245] + "é" + xs, xs[:245] + "_" + fnv1a(xs[:245]+"é"+xs)}, // é would end past byte 246: cut before it
	}
	seen := map[string]string{}
	for _, tt := range tests {
		got := FixName(tt.in)
		if got != tt.want {
			t.Errorf("FixName(%.12q…) = …%q, want …%q", tt.in, got[len(got)-20:], tt.want[len(tt.want)-20:])
		}
		if len(got) > MaxPropertyName || BrokenNameRule(got) != 0 {
			t.Errorf("FixName(%.12q…) breaks a rule: %d bytes", tt.in, len(got))
		}
		if other, dup := seen[got]; dup {
			t.Errorf("%.12q… and %.12q… share the name %q", other, tt.in, got)
		}
		seen[got] = tt.in
	}
}

// TestConformFixture: a record that breaks each rule alone and all together,
// against golden files (go test -update rewrites them).
func TestConformFixture(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "conform", "rules.json"))
	if err != nil {
		t.Fatal(err)
	}
	in = jsonx.TrimSpace(in)
	out, changes := Conform(nil, in)
	var report bytes.Buffer
	for _, c := range changes {
		fmt.Fprintln(&report, c)
	}
	golden(t, "rules.golden.json", out)
	golden(t, "rules.changes.txt", report.Bytes())
	checkConformed(t, in, out, changes)
	if len(changes) != 19 {
		t.Errorf("%d changes, want 19", len(changes))
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "conform", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs (go test -update after a deliberate change):\n got %s\nwant %s", name, got, want)
	}
}

// checkConformed asserts what Conform promises: the event passes Keen's
// rules (as the emulator checks them), conforming it again changes nothing,
// no change means the same bytes, and every primitive value is kept (an
// array kept as JSON text counts as that text).
func checkConformed(t *testing.T, in, out []byte, changes []Change) {
	t.Helper()
	if err := jsonx.Valid(out); err != nil {
		t.Fatalf("conformed event is not JSON: %v\n%s", err, out)
	}
	if len(changes) == 0 && !bytes.Equal(in, out) {
		t.Fatalf("no change, but the bytes differ:\n%s\n%s", in, out)
	}
	if _, err := emulator.CheckEvent(withoutKeen(t, out)); err != nil {
		t.Fatalf("Keen would drop the conformed event: %v\n%s", err, out)
	}
	again, more := Conform(nil, out)
	if len(more) != 0 || !bytes.Equal(again, out) {
		t.Fatalf("conforming twice changed %v:\n%s\n%s", more, out, again)
	}
	a, err := keentest.Leaves(in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := keentest.Leaves(out)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) {
		t.Fatalf("values differ:\n in %q\nout %q", a, b)
	}
}

// withoutKeen drops the top-level keen members, whose rules are
// AppendEvent's.
func withoutKeen(t *testing.T, obj []byte) []byte {
	out, _ := jsonx.AppendWithout(nil, obj, "keen")
	if out[len(out)-1] == ',' {
		out = out[:len(out)-1]
	}
	return append(out, '}')
}

func FuzzConform(f *testing.F) {
	for _, s := range []string{`{}`, `{"a.b":1,"a_b":2}`, `{"$x":[{"y":[1]}]}`, `{"":{"":[]}}`, `{"keen":{"addons":[{}]},"k":[[]]}`,
		`{"a\u002e":"\u2028","n":-0.0e-5}`, `{"` + strings.Repeat("é", 130) + `":[[{}]]}`} {
		f.Add([]byte(s))
	}
	if b, err := os.ReadFile(filepath.Join("testdata", "conform", "rules.json")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		data = jsonx.TrimSpace(data)
		if jsonx.Valid(data) != nil || jsonx.KindOf(data) != jsonx.Object {
			return
		}
		out, changes := Conform(nil, data)
		checkConformed(t, data, out, changes)
		// The validating pass notes a trait wherever Conform would change
		// something, so that records without traits can skip it.
		r, err := capture(data, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) > 0 && !NeedsConform(r.Traits) {
			t.Fatalf("changes %v but no trait noted in %s", changes, data)
		}
	})
}
