package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"destination-keen/tools/protocoldiff/diff"
)

var (
	ourSchema = filepath.Join("..", "..", "schemas", "airbyte_protocol.schema.json")
	allowList = filepath.Join("..", "..", "schemas", "protocoldiff.allow")
	official  = filepath.Join("..", "..", "..", "shared", "airbyte-protocol", "airbyte_protocol.yaml")
)

// TestOfficialRelease: against the official definition of the release the
// schema follows, protocoldiff reports nothing the allow-list does not
// explain, and the allow-list explains nothing that is gone.
func TestOfficialRelease(t *testing.T) {
	raw, err := os.ReadFile(official)
	if os.IsNotExist(err) {
		t.Skip("../shared/airbyte-protocol/airbyte_protocol.yaml is not beside the project: no official definition to compare with")
	}
	if err != nil {
		t.Fatal(err)
	}
	ours, err := diff.Load(ourSchema)
	if err != nil {
		t.Fatal(err)
	}
	release, _ := ours["x-airbyte-protocol"].(map[string]any)
	sum := sha256.Sum256(raw)
	if got := hex.EncodeToString(sum[:]); got != release["sha256"] {
		t.Fatalf("the official file's sha256 is %s, the schema follows %v (%v): a different release; run protocoldiff on it and upgrade (README)", got, release["release"], release["sha256"])
	}
	off, err := diff.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	allowed, err := diff.ReadAllowList(allowList)
	if err != nil {
		t.Fatal(err)
	}
	left, stale := diff.Filter(diff.Compare(off, ours), allowed)
	for _, d := range left {
		t.Errorf("not in the allow-list: %s", d)
	}
	for _, a := range stale {
		t.Errorf("the allow-list explains a difference that is gone: %s %s", a.Kind, a.Path)
	}
}

type nextRelease struct {
	Patch []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value"`
	} `json:"patch"`
	Reported []string `json:"reported"`
}

// next builds the synthetic next release of testdata/next-release.json
// from the project's schema.
func next(t *testing.T) (nextDoc []byte, reported []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "next-release.json"))
	if err != nil {
		t.Fatal(err)
	}
	var nr nextRelease
	if err := json.Unmarshal(b, &nr); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(ourSchema)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	for _, op := range nr.Patch {
		if op.Op != "add" {
			t.Fatalf("op %q: only add is written here", op.Op)
		}
		var v any
		if err := json.Unmarshal(op.Value, &v); err != nil {
			t.Fatal(err)
		}
		doc = add(t, doc, strings.Split(strings.TrimPrefix(op.Path, "/"), "/"), v)
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return out, nr.Reported
}

// add is JSON Patch's add: a member of an object, or "-" for the end of
// an array.
func add(t *testing.T, n any, path []string, v any) any {
	t.Helper()
	switch n := n.(type) {
	case map[string]any:
		if len(path) == 1 {
			n[path[0]] = v
			return n
		}
		n[path[0]] = add(t, n[path[0]], path[1:], v)
		return n
	case []any:
		if len(path) == 1 && path[0] == "-" {
			return append(n, v)
		}
		i, err := strconv.Atoi(path[0])
		if err != nil || i >= len(n) {
			t.Fatalf("bad index %q", path[0])
		}
		n[i] = add(t, n[i], path[1:], v)
		return n
	}
	t.Fatalf("no such path %v", path)
	return nil
}

// TestUpgrade walks a maintainer's upgrade to the synthetic next release:
// protocoldiff reports exactly its changes; the schema with them brought in
// generates Go types with which the project builds and its decoding tests
// pass, and the new values are in the generated lists. (That the connector
// skips the new message type and ignores the new members at run time is
// TestNextReleaseInput in cmd/destination-keen.)
func TestUpgrade(t *testing.T) {
	nextDoc, reported := next(t)
	nextRel, err := diff.ParseJSON(nextDoc)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := diff.Load(ourSchema)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range diff.Compare(nextRel, ours) {
		got = append(got, d.String())
	}
	slices.Sort(got)
	slices.Sort(reported)
	if !slices.Equal(got, reported) {
		t.Fatalf("protocoldiff reports\n%s\nwant exactly the release's changes\n%s", strings.Join(got, "\n"), strings.Join(reported, "\n"))
	}
	if testing.Short() {
		t.Skip("-short: regenerating and building with the next release takes a while")
	}

	// Bring the changes in (the next release's schema is ours with them)
	// and regenerate into a scratch folder.
	dir := t.TempDir()
	schema := filepath.Join(dir, "airbyte_protocol.schema.json")
	if err := os.WriteFile(schema, nextDoc, 0o644); err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	gen := filepath.Join(dir, "protocol.go")
	run("run", "./tools/genprotocol", "-schema", schema, "-overlay", filepath.Join(root, "schemas", "protocol.overlay.json"), "-o", gen)
	values, err := os.ReadFile(filepath.Join(dir, "values.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"AirbyteMessageTypeHEARTBEAT,", "DestinationSyncModeAppendMerge,"} {
		if !strings.Contains(string(values), v) {
			t.Errorf("the regenerated lists lack %s", v)
		}
	}
	types, err := os.ReadFile(gen)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"SourceRecordID *string", "Priority *schemas.Integer", "type AirbyteHeartbeatMessage struct"} {
		if !strings.Contains(string(types), f) {
			t.Errorf("the regenerated types lack %q", f)
		}
	}
	overlay := filepath.Join(dir, "overlay.json")
	ov, _ := json.Marshal(map[string]any{"Replace": map[string]string{
		filepath.Join(root, "gen", "protocol", "protocol.go"): gen,
		filepath.Join(root, "gen", "protocol", "values.go"):   filepath.Join(dir, "values.go"),
	}})
	if err := os.WriteFile(overlay, ov, 0o644); err != nil {
		t.Fatal(err)
	}
	run("build", "-overlay", overlay, "./...")
	run("test", "-count=1", "-overlay", overlay, "./internal/message", "./internal/catalog", "./internal/airbyte", "./internal/checkpoint")
}
