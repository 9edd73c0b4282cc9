package keen

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"

	"github.com/zeebo/xxh3"
)

// tokenHashBytes of the hash make the token: 30 bytes, 40 characters of
// unpadded base64url.
const tokenHashBytes = 30

// Uniqueness tokens. Keen keeps only the first event it collects with a
// given keen.uniqueness_token in a collection, for 31 days. A token derived
// from the record makes the same record sent again (a retried sync, an
// inclusive cursor reading the last row again) add nothing; the record's
// content is part of it, so that a row whose data changed under the same
// key and cursor value (a figure corrected by the source) is a new event.
//
// A token is "dk2_" and the first 30 bytes (240 bits) of a SHA-256 in
// unpadded base64url: 44 characters, within Keen's 64. SHA-256 rather than
// a faster non-cryptographic hash for what identifies a row (collection,
// generation, sync, key, cursor): a source row crafted to collide with
// another row's token would make Keen drop that other event, and Keen counts
// events for billing. The record's content enters as its 128-bit XXH3
// digest ('d' below): hashing a whole record with SHA-256 costs four times
// the token (measured: BenchmarkToken), and a crafted collision of the
// digest can only merge two versions of the crafter's own row, as the key
// and cursor around it are hashed by SHA-256. A stream without a primary
// key (uniqueness_token all_streams) has nothing else to identify its rows,
// so there the whole record is hashed by SHA-256 ('r').
//
// The hash is taken over a canonical sequence that never changes within
// version 2 (a test pins known records to their tokens): the text "dk2",
// then each field that is present, in this order, as one tag byte, the
// field's length as a uvarint and its bytes:
//
//	'c' the collection's name
//	'g' the generation (decimal), for a truncating stream with a generation_id
//	's' the sync_id (decimal), for a snapshot (full refresh, or no cursor value)
//	'k' the primary key: the count of its values as a uvarint with no bytes
//	    after it, then for each value 'v', its length and its JSON text as the
//	    source sent it
//	'u' the cursor value's JSON text as the source sent it
//	'd' the XXH3 128-bit digest (seed 0, big-endian) of the record's data as
//	    the source sent it (streams with a primary key)
//	'r' the record's data as the source sent it (streams without one)
//
// JSON text "as the source sent it" means that a source that writes the
// same value differently (1 and 1.0, or members in another order) makes a
// different token; a source resending a record sends the same text.
// Version 1 ("dk1_") hashed the key and cursor without the content, so a
// changed row under the same key and cursor was dropped by Keen.

// TokenPrefix starts every token the connector derives (version 2).
const TokenPrefix = "dk2_"

// TokenLen is the length of a token: well within Keen's 64.
const TokenLen = len(TokenPrefix) + tokenHashBytes/3*4

// tokenDomain starts the hashed sequence.
const tokenDomain = "dk2"

// TokenInput is what one event's token is derived from.
type TokenInput struct {
	Collection string
	Generation string   // "" for none
	SyncID     string   // "" for none
	Key        [][]byte // the primary key's values; nil for no key
	Cursor     []byte   // nil for none
	Content    []byte   // the record's data, digested; nil for none
	Record     []byte   // the record's data, hashed whole; nil for none
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
	if in.Content != nil {
		d := xxh3.Hash128(in.Content).Bytes()
		b = field(b, 'd', d[:])
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
