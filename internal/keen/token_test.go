package keen

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// TestTokensPinned: the derivation is part of the connector's contract
// (a retried sync after an upgrade must find the same tokens): these
// records keep these tokens in every version of the connector. A change
// here is a new version of the derivation, with its own prefix.
func TestTokensPinned(t *testing.T) {
	tests := []struct {
		name string
		in   TokenInput
		want string
	}{
		{"key and cursor", TokenInput{Collection: "orders", Key: [][]byte{[]byte(`1001`)}, Cursor: []byte(`"2024-03-01T10:15:00Z"`)},
			"dk1_Mnpe4y9tfxtt_ls3fLwJkoICnEvALSvhwuZ9fXTO"},
		{"snapshot", TokenInput{Collection: "users", SyncID: "42", Key: [][]byte{[]byte(`"u-1"`)}},
			"dk1_JjiLkDdv8WEKnLC52SibCqoj5Cd1ZYiXp2EHb2FR"},
		{"composite key, generation", TokenInput{Collection: "c", Generation: "3", SyncID: "9", Key: [][]byte{[]byte(`1`), []byte(`"a"`)}},
			"dk1_6IhZI6rl7LPNq6I1P6QzTt9aVrmcVU-RVQNQN6tI"},
		{"record", TokenInput{Collection: "events", Record: []byte(`{"a":1,"b":[1,2]}`)},
			"dk1_tEwrbQfze876Y6ymxBzFiB72MvZ9qK5_-IlGacM4"},
	}
	var tk Tokener
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(tk.Append(nil, &tt.in))
			if len(got) != TokenLen || !strings.HasPrefix(got, TokenPrefix) {
				t.Fatalf("token %q: want %d characters starting %q", got, TokenLen, TokenPrefix)
			}
			if got != tt.want {
				t.Fatalf("token %s, pinned %s", got, tt.want)
			}
		})
	}
}

// TestTokenAsDocumented derives one token by hand from the documented
// byte sequence, apart from the code.
func TestTokenAsDocumented(t *testing.T) {
	cursor := `"2024-03-01T10:15:00Z"`
	seq := "dk1" +
		"c\x06orders" + // the collection
		"k\x01" + "v\x041001" + // one key value
		"u" + string(rune(len(cursor))) + cursor // the cursor
	sum := sha256.Sum256([]byte(seq))
	want := TokenPrefix + base64.RawURLEncoding.EncodeToString(sum[:30])
	var tk Tokener
	got := string(tk.Append(nil, &TokenInput{Collection: "orders", Key: [][]byte{[]byte(`1001`)}, Cursor: []byte(cursor)}))
	if got != want {
		t.Fatalf("token %s, by hand %s", got, want)
	}
}

// TestTokensTellApart: every field counts, and no two ways of cutting the
// same bytes into fields give one token.
func TestTokensTellApart(t *testing.T) {
	base := TokenInput{Collection: "c", Key: [][]byte{[]byte(`1`)}, Cursor: []byte(`5`)}
	variants := []TokenInput{
		base,
		{Collection: "d", Key: [][]byte{[]byte(`1`)}, Cursor: []byte(`5`)},
		{Collection: "c", Key: [][]byte{[]byte(`2`)}, Cursor: []byte(`5`)},
		{Collection: "c", Key: [][]byte{[]byte(`1`)}, Cursor: []byte(`6`)},
		{Collection: "c", Key: [][]byte{[]byte(`1`)}, Cursor: []byte(`5`), SyncID: "1"},
		{Collection: "c", Key: [][]byte{[]byte(`1`)}, Cursor: []byte(`5`), Generation: "1"},
		{Collection: "c", Key: [][]byte{[]byte(`1`), []byte(`5`)}},
		{Collection: "c", Key: [][]byte{[]byte(`15`)}},
		{Collection: "c1", Key: [][]byte{[]byte(`5`)}},
		{Collection: "c", Record: []byte(`15`)},
	}
	var tk Tokener
	seen := map[string]int{}
	for i, v := range variants {
		tok := string(tk.Append(nil, &v))
		if j, dup := seen[tok]; dup {
			t.Fatalf("variants %d and %d share token %s", j, i, tok)
		}
		seen[tok] = i
	}
	if again := string(tk.Append(nil, &base)); seen[again] != 0 {
		t.Fatal("the same input gave another token")
	}
}

func TestAppendEventToken(t *testing.T) {
	ts := time.UnixMilli(1628080068000)
	tok := []byte("dk1_x")
	for _, tt := range []struct{ data, want string }{
		{`{"a":1}`, `{"a":1,"keen":{"timestamp":"2021-08-04T12:27:48Z","uniqueness_token":"dk1_x"}}`},
		{`{}`, `{"keen":{"timestamp":"2021-08-04T12:27:48Z","uniqueness_token":"dk1_x"}}`},
		{`{"keen":{"location":{}}}`, `{"keen":{"timestamp":"2021-08-04T12:27:48Z","location":{},"uniqueness_token":"dk1_x"}}`},
		{`{"keen":5}`, `{"keen":{"timestamp":"2021-08-04T12:27:48Z","uniqueness_token":"dk1_x"}}`},
		{`{"keen":{"uniqueness_token":"mine"}}`, `{"keen":{"timestamp":"2021-08-04T12:27:48Z","uniqueness_token":"mine"}}`},
	} {
		r, err := capture([]byte(tt.data), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, sh := r.AppendEvent(nil, ts, tok, nil)
		if string(got) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.data, got, tt.want)
		}
		if sh.SourceToken != strings.Contains(tt.data, "mine") {
			t.Errorf("%s: SourceToken %v", tt.data, sh.SourceToken)
		}
	}
}

func TestAppendEventGeneration(t *testing.T) {
	ts := time.UnixMilli(1628080068000)
	gen := &Generation{Name: "_airbyte_generation_id", Value: []byte("5")}
	for _, tt := range []struct{ data, want string }{
		{`{"a":1}`, `{"a":1,"_airbyte_generation_id":5,"keen":{"timestamp":"2021-08-04T12:27:48Z"}}`},
		{`{}`, `{"_airbyte_generation_id":5,"keen":{"timestamp":"2021-08-04T12:27:48Z"}}`},
		{`{"keen":{"location":{}},"b":2}`, `{"b":2,"_airbyte_generation_id":5,"keen":{"timestamp":"2021-08-04T12:27:48Z","location":{}}}`},
	} {
		r, err := capture([]byte(tt.data), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := r.AppendEvent(nil, ts, nil, gen); string(got) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.data, got, tt.want)
		}
	}
}

func BenchmarkToken(b *testing.B) {
	b.ReportAllocs()
	var tk Tokener
	in := TokenInput{Collection: "orders", Key: [][]byte{[]byte(`123456`)}, Cursor: []byte(`"2024-03-01T10:15:00.123Z"`)}
	buf := make([]byte, 0, TokenLen)
	for b.Loop() {
		buf = tk.Append(buf[:0], &in)
	}
}
