// Package schemas owns the JSON Schema documents that are the single source of
// truth for the connector's contract: the Airbyte protocol messages a
// destination reads and writes, the connector's config (its
// connectionSpecification) and the rest of its SPEC. They are embedded in the
// binary, compiled here for validation, and turned into Go types under gen/ by
// `make generate`. This package validates; it does not decode into Go types.
package schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// The embedded documents. Their $id values are the URLs the compiler resolves.
//
//go:embed airbyte_protocol.schema.json config.schema.json spec.json
var files embed.FS

const (
	// ProtocolFile is the Airbyte protocol schema, following the official
	// definition (its x-airbyte-protocol member names the release).
	ProtocolFile = "airbyte_protocol.schema.json"
	// ConfigFile is the connector's connectionSpecification.
	ConfigFile = "config.schema.json"
	// SpecFile holds the SPEC fields other than connectionSpecification.
	SpecFile = "spec.json"

	baseURL = "https://destination-keen.local/schemas/"
)

// Raw returns the bytes of an embedded document, exactly as authored.
func Raw(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		// The names are constants of this package; a miss is a build defect.
		panic(fmt.Sprintf("schemas: %s is not embedded: %v", name, err))
	}
	return b
}

// Names of the schemas that Compile accepts. A protocol definition is named
// by its key, e.g. "ConfiguredAirbyteCatalog".
const (
	AirbyteMessage = "AirbyteMessage"
	Config         = "Config"
)

var (
	compileOnce sync.Once
	compiler    *jsonschema.Compiler
	compileErr  error
	cacheMu     sync.Mutex
	cache       = map[string]*jsonschema.Schema{}
)

// Compile returns the compiled schema called name: AirbyteMessage, Config,
// or any definition of the protocol schema (e.g. "ConfiguredAirbyteCatalog",
// "AirbyteStateMessage"). Compiled schemas are cached.
func Compile(name string) (*jsonschema.Schema, error) {
	compileOnce.Do(func() {
		c := jsonschema.NewCompiler()
		c.Draft = jsonschema.Draft7
		for _, f := range []string{ProtocolFile, ConfigFile} {
			if err := c.AddResource(baseURL+f, bytes.NewReader(Raw(f))); err != nil {
				compileErr = fmt.Errorf("schemas: add %s: %w", f, err)
				return
			}
		}
		lenient, err := lenientProtocol(Raw(ProtocolFile), baseURL+lenientDir+ProtocolFile)
		if err == nil {
			err = c.AddResource(baseURL+lenientDir+ProtocolFile, bytes.NewReader(lenient))
		}
		if err != nil {
			compileErr = fmt.Errorf("schemas: add the lenient protocol: %w", err)
			return
		}
		compiler = c
	})
	if compileErr != nil {
		return nil, compileErr
	}
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if s, ok := cache[name]; ok {
		return s, nil
	}
	var url string
	switch {
	case name == Config:
		url = baseURL + ConfigFile
	case strings.HasPrefix(name, lenientDir):
		url = baseURL + lenientDir + ProtocolFile + "#/definitions/" + strings.TrimPrefix(name, lenientDir)
	default:
		url = baseURL + ProtocolFile + "#/definitions/" + name
	}
	s, err := compiler.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("schemas: compile %s: %w", name, err)
	}
	cache[name] = s
	return s, nil
}

// lenientDir prefixes the protocol schema read liberally.
const lenientDir = "lenient/"

// NotRead names, per protocol definition, the members the connector never
// reads: the lenient schema does not require them, nor bound their length.
// Airbyte's destinations read catalogs without checking what they do not use
// (its own acceptance-test catalogs have streams without
// supported_sync_modes), and so does this one. A member present is still
// checked for its type, so that the catalog decodes.
var NotRead = map[string][]string{
	"AirbyteStream": {"json_schema", "supported_sync_modes"},
}

// lenientProtocol is the protocol schema read liberally, under id: every
// enum left out (what a destination reads may hold values of a later
// release; the values the connector acts on are checked where it acts on
// them), and the members of NotRead optional.
func lenientProtocol(doc []byte, id string) ([]byte, error) {
	var v map[string]any
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, err
	}
	defs, _ := v["definitions"].(map[string]any)
	for name, members := range NotRead {
		def, _ := defs[name].(map[string]any)
		props, _ := def["properties"].(map[string]any)
		required, _ := def["required"].([]any)
		for _, m := range members {
			prop, ok := props[m].(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s.%s is not in the protocol schema", name, m)
			}
			delete(prop, "minItems")
			required = slices.DeleteFunc(required, func(r any) bool { return r == m })
		}
		def["required"] = required
	}
	var strip func(any)
	strip = func(n any) {
		switch n := n.(type) {
		case map[string]any:
			if _, ok := n["enum"].([]any); ok {
				delete(n, "enum")
			}
			for _, c := range n {
				strip(c)
			}
		case []any:
			for _, c := range n {
				strip(c)
			}
		}
	}
	strip(v)
	v["$id"] = id
	return json.Marshal(v)
}

// ValidateLenient checks doc against the protocol definition called name
// without its enums: a value a later release adds is not refused there.
func ValidateLenient(name string, doc []byte) error {
	return Validate(lenientDir+name, doc)
}

// Validate checks doc, a JSON document, against the schema called name. A
// document that is not JSON gives a *SyntaxError; one that breaks the schema
// gives a *jsonschema.ValidationError.
func Validate(name string, doc []byte) error {
	s, err := Compile(name)
	if err != nil {
		return err
	}
	v, err := Decode(doc)
	if err != nil {
		return err
	}
	return s.Validate(v)
}

// SyntaxError says that a document is not JSON, and where, without quoting it:
// documents may hold secrets.
type SyntaxError struct {
	Offset int64 // byte offset where decoding failed; 0 when unknown
	cause  error
}

func (e *SyntaxError) Error() string {
	if e.Offset > 0 {
		return fmt.Sprintf("not valid JSON (near byte %d)", e.Offset)
	}
	return "not valid JSON"
}

// Unwrap returns the decoder's error, which may quote a character of the input.
func (e *SyntaxError) Unwrap() error { return e.cause }

// Decode parses one JSON document into the generic form the validator needs,
// keeping numbers exact. Trailing data after the document is an error.
func Decode(doc []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, syntaxError(err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, &SyntaxError{Offset: d.InputOffset()}
	}
	return v, nil
}

func syntaxError(err error) error {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return &SyntaxError{Offset: se.Offset, cause: err}
	}
	return &SyntaxError{cause: err}
}

// Problem is one way in which a document breaks its schema: where (a JSON
// pointer into the document, "" for the root) and why. Messages come from the
// validator, which names expected types, lengths and patterns but never quotes
// the offending value.
type Problem struct {
	Location string
	Message  string
}

func (p Problem) String() string { return p.Location + ": " + p.Message }

// Problems flattens a validation error into its leaf problems, sorted by
// location and message so that reports are stable. An error that is not a
// *jsonschema.ValidationError yields nil.
func Problems(err error) []Problem {
	ve, ok := errors.AsType[*jsonschema.ValidationError](err)
	if !ok {
		return nil
	}
	var out []Problem
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			out = append(out, Problem{Location: e.InstanceLocation, Message: e.Message})
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	slices.SortFunc(out, func(a, b Problem) int {
		if c := strings.Compare(a.Location, b.Location); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
	return slices.Compact(out)
}
