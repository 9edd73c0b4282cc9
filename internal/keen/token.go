package keen

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
)

// tokenHashBytes of the hash make the token: 30 bytes, 40 characters of
// unpadded base64url.
const tokenHashBytes = 30

// Uniqueness tokens. Keen keeps only the first event it collects with a
// given keen.uniqueness_token in a collection, for 31 days; a token derived
// from the record alone makes the same record sent again (a retried sync)
// add nothing.
//
// A token is "dk1_" and the first 30 bytes (240 bits) of a SHA-256 in
// unpadded base64url: 44 characters, within Keen's 64. SHA-256 rather than a
// faster non-cryptographic hash (xxh3 takes 14 ns where SHA-256 takes 120 on
// the development machine): a source row crafted to collide with another's
// token would make Keen drop that other event, and Keen counts events for
// billing. The hash is taken over a canonical sequence that never changes
// within version 1 (a test pins known records to their tokens): the text
// "dk1", then each field that is present, in this order, as one tag byte,
// the field's length as a uvarint and its bytes:
//
//	'c' the collection's name
//	'g' the generation (decimal), for a truncating stream with a generation_id
//	's' the sync_id (decimal), for a snapshot (full refresh, or no cursor value)
//	'k' the primary key: the count of its values as a uvarint with no bytes
//	    after it, then for each value 'v', its length and its JSON text as the
//	    source sent it
//	'u' the cursor value's JSON text as the source sent it
//	'r' the record's data as the source sent it (uniqueness_token: record)
//
// JSON text "as the source sent it" means that a source that writes the
// same value differently (1 and 1.0) makes a different token; a source
// resending a record sends the same text.

// TokenPrefix starts every token the connector derives (version 1).
const TokenPrefix = "dk1_"

// TokenLen is the length of a token: well within Keen's 64.
const TokenLen = len(TokenPrefix) + tokenHashBytes/3*4

// tokenDomain starts the hashed sequence; short, so that a typical key and
// cursor fit SHA-256's one block of 55 bytes.
const tokenDomain = "dk1"

// TokenInput is what one event's token is derived from.
type TokenInput struct {
	Collection string
	Generation string   // "" for none
	SyncID     string   // "" for none
	Key        [][]byte // the primary key's values; nil for no key
	Cursor     []byte   // nil for none
	Record     []byte   // nil unless the token hashes the whole record
}

// Tokener derives tokens; it is not safe for concurrent use (one per
// goroutine), and allocates nothing per token.
type Tokener struct {
	buf []byte
}

// Append appends the token of in to dst.
func (t *Tokener) Append(dst []byte, in *TokenInput) []byte {
	b := append(t.buf[:0], tokenDomain...)
	b = fieldString(b, 'c', in.Collection)
	if in.Generation != "" {
		b = fieldString(b, 'g', in.Generation)
	}
	if in.SyncID != "" {
		b = fieldString(b, 's', in.SyncID)
	}
	if in.Key != nil {
		b = append(b, 'k')
		b = binary.AppendUvarint(b, uint64(len(in.Key)))
		for _, v := range in.Key {
			b = field(b, 'v', v)
		}
	}
	if in.Cursor != nil {
		b = field(b, 'u', in.Cursor)
	}
	if in.Record != nil {
		b = field(b, 'r', in.Record)
	}
	t.buf = b
	sum := sha256.Sum256(b)
	dst = append(dst, TokenPrefix...)
	return base64.RawURLEncoding.AppendEncode(dst, sum[:tokenHashBytes])
}

func field(b []byte, tag byte, v []byte) []byte {
	b = append(b, tag)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func fieldString(b []byte, tag byte, v string) []byte {
	b = append(b, tag)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}
