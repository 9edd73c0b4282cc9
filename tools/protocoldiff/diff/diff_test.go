package diff

import (
	"fmt"
	"testing"
)

func TestCompare(t *testing.T) {
	official := `
properties:
  airbyte_message: {"$ref": "#/definitions/M"}
definitions:
  M:
    type: object
    additionalProperties: true
    required: [type, a]
    properties:
      type: {type: string, enum: [X, "Y"]}
      a: {type: integer}
      list: {type: array, minItems: 1, items: {"$ref": "#/definitions/E"}}
      gone: {type: string}
  E: {type: string, enum: [p, q]}
  Only: {type: object}
`
	ours := `{
  "description": "prose is not compared",
  "properties": {"airbyte_message": {"$ref": "#/definitions/M"}, "extra": {"type": "string"}},
  "definitions": {
    "M": {"type": "object", "description": "ours", "required": ["type"],
      "properties": {
        "type": {"type": "string", "enum": ["X", "Z"]},
        "a": {"type": "number"},
        "list": {"type": "array", "items": {"$ref": "#/definitions/E"}},
        "new": {"type": "boolean"}}},
    "E": {"type": "string", "enum": ["p", "q"], "goJSONSchema": {"type": "x"}},
    "Mine": {"type": "string"}
  }
}`
	a, err := Parse([]byte(official))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse([]byte(ours))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"adds (root).extra",
		"required M: ours lacks a",
		"type M.additionalProperties: official true, ours none",
		"type M.properties.a.type: official \"integer\", ours \"number\"",
		"lacks M.properties.gone",
		"type M.properties.list.minItems: official 1, ours none",
		"adds M.properties.new",
		"enum M.properties.type: ours lacks Y; ours adds Z",
		"adds Mine",
		"lacks Only",
	}
	got := Compare(a, b)
	if fmt.Sprint(stringsOf(got)) != fmt.Sprint(want) {
		t.Errorf("got\n%s\nwant\n%s", join(stringsOf(got)), join(want))
	}
	t.Run("an allow-list explains, and stale entries are reported", func(t *testing.T) {
		left, stale := Filter(got, []Allowed{{Kind: Lacks, Path: "Only", Why: "w"}, {Kind: Adds, Path: "Nothing", Why: "w"}})
		if len(left) != len(got)-1 || len(stale) != 1 || stale[0].Path != "Nothing" {
			t.Errorf("left %v, stale %v", left, stale)
		}
	})
}

func stringsOf(ds []Difference) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

func join(s []string) string {
	out := ""
	for _, l := range s {
		out += l + "\n"
	}
	return out
}
