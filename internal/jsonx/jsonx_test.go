package jsonx

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{`{}`, true},
		{` {"a": [1, -2.5e+3, "x\u00e9\n", true, false, null, {}]} `, true},
		{`18446744073709551615`, true},
		{`"\ud83d\ude00"`, true},
		{`{"a":1,}`, false},
		{`{"a" 1}`, false},
		{`[1 2]`, false},
		{`01`, false},
		{`1.`, false},
		{`-`, false},
		{`1e`, false},
		{`"\x"`, false},
		{`"\u12"`, false},
		{"\"a\tb\"", false},
		{"\"\xff\"", false},
		{`{"a":1}{}`, false},
		{`{"a":1`, false},
		{`tru`, false},
		{``, false},
		{strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), true},
		{strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), false},
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			err := Valid([]byte(tt.in))
			if (err == nil) != tt.ok {
				t.Fatalf("Valid(%q) = %v, want ok=%v", tt.in, err, tt.ok)
			}
		})
	}
}

func TestMembers(t *testing.T) {
	doc := []byte(`{"type" : "RECORD", "re\u0063ord":{"a":1} ,"n":[1,2]}`)
	var names, values []string
	Members(doc, func(m *Member) bool {
		names = append(names, m.Name())
		values = append(values, string(m.Value))
		if string(doc[m.Start:m.End]) != string(m.Key)+string(doc[m.Start+len(m.Key):m.End]) {
			t.Errorf("member bounds wrong")
		}
		return true
	})
	if strings.Join(names, ",") != "type,record,n" || strings.Join(values, "|") != `"RECORD"|{"a":1}|[1,2]` {
		t.Fatalf("names %q values %q", names, values)
	}
	if !KeyIs([]byte(`"re\u0063ord"`), "record") || KeyIs([]byte(`"re\u0063ord"`), "recor") {
		t.Fatal("KeyIs with escapes")
	}
	for _, bad := range []string{`[1]`, ``, `{"a":1`, `{"a":1} x`, `{"a":}`} {
		end, err := Walk([]byte(bad), 0, nil, func(_ []byte, v int) (int, error) { return SkipValue([]byte(bad), v) })
		if err == nil && end == len(bad) {
			t.Errorf("Walk(%q) accepted", bad)
		}
	}
}

// TestTraits: what the validating walk notes, keys and nested values alike.
func TestTraits(t *testing.T) {
	long := strings.Repeat("k", LongKey)
	tests := []struct {
		doc  string
		want Traits
	}{
		{`{"a":1,"b":{"c":[1,"x.y"]}}`, 0},
		{`{"a.b":1}`, OddKey},
		{`{"x":{"$a":1}}`, OddKey},
		{`{"":1}`, OddKey},
		{`{"a\u0062":1}`, OddKey},
		{`{"` + long[:LongKey-1] + `":1}`, 0},
		{`{"` + long + `":1}`, OddKey},
		{`{"a":[{"b":1}]}`, NestedArray},
		{`{"a":[[1]]}`, NestedArray},
		{`{"a":[1,[]],"b.c":2}`, NestedArray | OddKey},
		{`{"a":1.5,"b":-0,"c":123456789012345678901234567890}`, 0},
		{`{"a":1e400}`, OddNumber},
		{`{"a":[2E-3]}`, OddNumber},
		{`{"a":` + strings.Repeat("9", 309) + `}`, OddNumber},
		{`{"a":` + strings.Repeat("9", 308) + `.5}`, 0},
		{`{"a":"\ud83d\ude00 \u00e9"}`, 0},
		{`{"a":"x\ud800"}`, LoneSurrogate},
		{`{"a":["\udc00\ud83d"]}`, LoneSurrogate},
		{`{"a":"\\ud800"}`, 0}, // an escaped backslash, then text
		{`{"\ud800":1}`, OddKey},
	}
	for _, tt := range tests {
		var tr Traits
		b := []byte(tt.doc)
		if _, err := Walk(b, 0, &tr, func(_ []byte, v int) (int, error) { return SkipValueIn(b, v, 1, &tr) }); err != nil {
			t.Fatal(err)
		}
		if tr != tt.want {
			t.Errorf("%.40s: traits %b, want %b", tt.doc, tr, tt.want)
		}
	}
}

func TestUnquote(t *testing.T) {
	for in, want := range map[string]string{
		`"plain"`:        "plain",
		`"a\/b\n\u00e9"`: "a/b\né",
		`"\ud83d\ude00"`: "😀",
		`"tab\there"`:    "tab\there",
		`""`:             "",
	} {
		got, err := Unquote([]byte(in))
		if err != nil || got != want {
			t.Errorf("Unquote(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Unquote([]byte(`x`)); err == nil {
		t.Error("Unquote accepted a non-string")
	}
}

// FuzzValid checks the scanner against encoding/json: both must agree on
// what is JSON (encoding/json replaces invalid UTF-8 where we refuse it, so
// only texts that are valid UTF-8 are compared).
func FuzzValid(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,2,{"b":null}]}`, `"\u00e9"`, `-0.5e-3`, `[1,]`, `{"a":1}x`, `"\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Valid(b)
		if !json.Valid(b) {
			if err == nil {
				t.Fatalf("accepted what encoding/json rejects: %q", b)
			}
			return
		}
		if err != nil && !strings.Contains(err.Error(), "UTF-8") && !strings.Contains(err.Error(), "nested") {
			t.Fatalf("rejected valid JSON %q: %v", b, err)
		}
		// Members must see exactly the keys encoding/json sees, in order.
		tb := TrimSpace(b)
		if KindOf(tb) == Object && err == nil {
			var keys, slow, fast []string
			if _, werr := Walk(tb, 0, nil, func(key []byte, v int) (int, error) {
				e, err := SkipValueIn(tb, v, 1, nil)
				if err == nil {
					name, _ := Unquote(key)
					keys = append(keys, name)
					slow = append(slow, string(key)+":"+string(tb[v:e]))
				}
				return e, err
			}); werr != nil {
				t.Fatalf("Walk rejected a valid object: %v", werr)
			}
			Members(tb, func(m *Member) bool { fast = append(fast, string(m.Key)+":"+string(m.Value)); return true })
			if strings.Join(slow, "\x00") != strings.Join(fast, "\x00") {
				t.Fatalf("Members %q differs from Walk %q", fast, slow)
			}
			var obj map[string]json.RawMessage
			if json.Unmarshal(tb, &obj) == nil {
				for _, k := range keys {
					if _, ok := obj[k]; !ok {
						t.Fatalf("key %q not in encoding/json's view %v", k, obj)
					}
				}
			}
		}
	})
}

func TestAppendWithout(t *testing.T) {
	tests := []struct{ obj, out, value string }{
		{`{}`, `{`, ``},
		{`{"a":1}`, `{"a":1,`, ``},
		{`{"k":1,"a":2,"k":{"x":3}}`, `{"a":2,`, `{"x":3}`},
		{`{"k":1}`, `{`, `1`},
	}
	for _, tt := range tests {
		out, value := AppendWithout([]byte("p:"), []byte(tt.obj), "k")
		if string(out) != "p:"+tt.out || string(value) != tt.value {
			t.Errorf("AppendWithout(%s) = %q, %q; want %q, %q", tt.obj, out, value, tt.out, tt.value)
		}
	}
}

// TestTraitsOnTruncatedInput: noting traits never reads past the input
// (a truncated array once did).
func TestTraitsOnTruncatedInput(t *testing.T) {
	for _, b := range []string{`[`, `[1,`, `{"a":[`, `{"a":[{}`, `{"":[[`} {
		var tr Traits
		if _, err := SkipValueIn([]byte(b), 0, 0, &tr); err == nil {
			t.Errorf("%q accepted", b)
		}
	}
}

func TestLookup(t *testing.T) {
	doc := []byte(`{"a":1,"a":{"b":[1],"c":{"d":"x"}},"e":null}`)
	for _, tt := range []struct {
		path []string
		want string // "" for nil
	}{
		{[]string{"a", "c", "d"}, `"x"`},
		{[]string{"a", "b"}, `[1]`},
		{[]string{"a", "b", "x"}, ""},
		{[]string{"e"}, `null`},
		{[]string{"nope"}, ""},
		{nil, string(doc)},
	} {
		got := Lookup(doc, tt.path...)
		if string(got) != tt.want || (tt.want == "" && got != nil) {
			t.Errorf("Lookup(%v) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

// TestLoneSurrogates: which escapes are lone, and their replacement by
// \ufffd with every other byte kept.
func TestLoneSurrogates(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"plain"`, `"plain"`},
		{`"\ud83d\ude00"`, `"\ud83d\ude00"`},
		{`"\uD83D\uDE00"`, `"\uD83D\uDE00"`},
		{`"\ud800"`, `"\ufffd"`},
		{`"a\ud800b"`, `"a\ufffdb"`},
		{`"\udc00"`, `"\ufffd"`},
		{`"\ude00\ud83d"`, `"\ufffd\ufffd"`},
		{`"\ud83d\ud83d\ude00"`, `"\ufffd\ud83d\ude00"`},
		{`"\ud800\n\u00e9"`, `"\ufffd\n\u00e9"`},
		{`"\\ud800"`, `"\\ud800"`},
		{`"\\\ud800"`, `"\\\ufffd"`},
		{`"\ud7ff\ue000"`, `"\ud7ff\ue000"`},
		{`"\ud800\u0041"`, `"\ufffd\u0041"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if err := Valid([]byte(tt.in)); err != nil {
				t.Fatal(err)
			}
			lone := tt.in != tt.want
			if got := HasLoneSurrogate([]byte(tt.in)); got != lone {
				t.Fatalf("HasLoneSurrogate = %t, want %t", got, lone)
			}
			got := AppendWithoutLoneSurrogates([]byte("x"), []byte(tt.in))
			if string(got) != "x"+tt.want {
				t.Fatalf("got %s, want %s", got[1:], tt.want)
			}
			// Decoded, only the lone halves differ, as U+FFFD both ways.
			a, _ := Unquote([]byte(tt.in))
			b, _ := Unquote(got[1:])
			if a != b || HasLoneSurrogate(got[1:]) {
				t.Fatalf("decoded %q, then %q", a, b)
			}
		})
	}
}
