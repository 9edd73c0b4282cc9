package keen

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zeebo/xxh3"
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
		{"key, cursor and content", TokenInput{Collection: "orders", Key: [][]byte{[]byte(`1001`)}, Cursor: []byte(`"2024-03-01T10:15:00Z"`), Content: []byte(`{"id":1001,"total":9.5,"updated_at":"2024-03-01T10:15:00Z"}`)},
			"dk2_HnwXtbeHk-37BtKZJivagEF4EL_Cexjdm5b0ZxBu"},
		{"snapshot", TokenInput{Collection: "users", SyncID: "42", Key: [][]byte{[]byte(`"u-1"`)}, Content: []byte(`{"id":"u-1"}`)},
			"dk2_QJgskrfcCNCDWmZNjKsGqkleMzMu1N7y614ekDNi"},
		{"composite key, generation", TokenInput{Collection: "c", Generation: "3", SyncID: "9", Key: [][]byte{[]byte(`1`), []byte(`"a"`)}, Content: []byte(`{"k1":1,"k2":"a"}`)},
			"dk2_nPs9sdya8R06dGAQDmlNCO8lBDOxceSsbfdAkBeg"},
		{"record", TokenInput{Collection: "events", Record: []byte(`{"a":1,"b":[1,2]}`)},
			"dk2_bAZboCjoVKEs0pKt2zEf-Y5HfTxNyVAp8P07uDW9"},
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
	content := `{"id":1001,"total":9.5,"updated_at":"2024-03-01T10:15:00Z"}`
	digest := xxh3.Hash128([]byte(content)).Bytes()
	seq := "dk2" +
		"c\x06orders" + // the collection
		"k\x01" + "v\x041001" + // one key value
		"u" + string(rune(len(cursor))) + cursor + // the cursor
		"d\x10" + string(digest[:]) // the content's digest
	sum := sha256.Sum256([]byte(seq))
	want := TokenPrefix + base64.RawURLEncoding.EncodeToString(sum[:30])
	var tk Tokener
	got := string(tk.Append(nil, &TokenInput{Collection: "orders", Key: [][]byte{[]byte(`1001`)}, Cursor: []byte(cursor), Content: []byte(content)}))
	if got != want {
		t.Fatalf("token %s, by hand %s", got, want)
	}
}

// TestContentDigestIsXXH3: the content digest is XXH3's 128-bit hash, by
// the value the XXH3 specification gives for the empty input, so that a
// library change that alters it (and so every token) cannot pass unseen.
func TestContentDigestIsXXH3(t *testing.T) {
	d := xxh3.Hash128(nil).Bytes()
	if got := fmt.Sprintf("%x", d); got != "99aa06d3014798d86001c324468d497f" {
		t.Fatalf("XXH3-128 of the empty input is %s", got)
	}
}

// TestTokensKeepVersions: a row whose content changed under the same key
// and cursor is a new event (its token differs); the same row sent again
// is not.
func TestTokensKeepVersions(t *testing.T) {
	row := func(content string) TokenInput {
		return TokenInput{Collection: "ads", Key: [][]byte{[]byte(`"2024-01-01"`), []byte(`"a1"`)}, Cursor: []byte(`"2024-01-01"`), Content: []byte(content)}
	}
	var tk Tokener
	v1 := string(tk.Append(nil, ptr(row(`{"date_start":"2024-01-01","ad_id":"a1","clicks":5}`))))
	again := string(tk.Append(nil, ptr(row(`{"date_start":"2024-01-01","ad_id":"a1","clicks":5}`))))
	v2 := string(tk.Append(nil, ptr(row(`{"date_start":"2024-01-01","ad_id":"a1","clicks":7}`))))
	if v1 != again {
		t.Fatal("the same row sent again got another token")
	}
	if v1 == v2 {
		t.Fatal("a corrected row got the token of its first version: Keen would drop it")
	}
}

func ptr[T any](v T) *T { return &v }

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
		{Collection: "c", Key: [][]byte{[]byte(`1`)}, Cursor: []byte(`5`), Content: []byte(`{}`)},
		{Collection: "c", Key: [][]byte{[]byte(`1`)}, Cursor: []byte(`5`), Content: []byte(`{"a":1}`)},
		{Collection: "c", Key: [][]byte{[]byte(`1`)}, Cursor: []byte(`5`), Record: []byte(`{}`)},
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
	tok := []byte("dk2_x")
	for _, tt := range []struct{ data, want string }{
		{`{"a":1}`, `{"a":1,"keen":{"timestamp":"2021-08-04T12:27:48Z","uniqueness_token":"dk2_x"}}`},
		{`{}`, `{"keen":{"timestamp":"2021-08-04T12:27:48Z","uniqueness_token":"dk2_x"}}`},
		{`{"keen":{"location":{}}}`, `{"keen":{"timestamp":"2021-08-04T12:27:48Z","location":{},"uniqueness_token":"dk2_x"}}`},
		{`{"keen":5}`, `{"keen":{"timestamp":"2021-08-04T12:27:48Z","uniqueness_token":"dk2_x"}}`},
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

// BenchmarkToken measures a token with and without the record's content,
// and the content hashed whole by SHA-256 instead of digested by XXH3 (the
// choice token.go explains), on a record of about 450 bytes.
func BenchmarkToken(b *testing.B) {
	content := []byte(`{"id":123456,"name":"` + strings.Repeat("x", 380) + `","updated_at":"2024-03-01T10:15:00.123Z"}`)
	key := TokenInput{Collection: "orders", Key: [][]byte{[]byte(`123456`)}, Cursor: []byte(`"2024-03-01T10:15:00.123Z"`)}
	withDigest, withSHA := key, key
	withDigest.Content, withSHA.Record = content, content
	for _, v := range []struct {
		name string
		in   TokenInput
	}{{"key-cursor", key}, {"key-cursor-content-xxh3", withDigest}, {"key-cursor-content-sha256", withSHA}} {
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			var tk Tokener
			buf := make([]byte, 0, TokenLen)
			for b.Loop() {
				buf = tk.Append(buf[:0], &v.in)
			}
		})
	}
}
