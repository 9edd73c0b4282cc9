package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readmeBlock returns the first ```sh block of the README section whose
// heading is heading, skipping skip blocks before it.
func readmeBlock(t *testing.T, readme, heading string, skip int) string {
	t.Helper()
	i := strings.Index(readme, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("the README has no section %q", heading)
	}
	rest := readme[i:]
	for range skip + 1 {
		j := strings.Index(rest, "```sh\n")
		if j < 0 {
			t.Fatalf("section %q has too few sh blocks", heading)
		}
		rest = rest[j+len("```sh\n"):]
	}
	end := strings.Index(rest, "```")
	if end < 0 {
		t.Fatalf("an sh block of %q does not end", heading)
	}
	return rest[:end]
}

// TestReadmeWalkthrough runs the README's walkthrough ("Sync your own
// catalog") and its list of the emulator's endpoints as a user would, with
// bash and curl, against the connector and emulator built from this tree,
// and checks what they print.
func TestReadmeWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the emulator and runs the README's commands")
	}
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the README's commands need it", tool)
		}
	}
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	walk := readmeBlock(t, readme, "## Sync your own catalog", 0)
	endpoints := readmeBlock(t, readme, "## The local Keen emulator", 1)

	// The first line builds the binaries; here they are this test's.
	first, rest, _ := strings.Cut(walk, "\n")
	if !strings.HasPrefix(first, "make build && go build -o bin/keenlocal ./tools/keenlocal") {
		t.Fatalf("the walkthrough's first line changed: %q", first)
	}
	body, kill, ok := strings.Cut(rest, "kill %1")
	if !ok {
		t.Fatal("the walkthrough no longer stops the emulator with kill %1")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "bin", "keenlocal"), "destination-keen/tools/keenlocal")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the emulator: %v\n%s", err, out)
	}
	wrapper := "#!/bin/sh\n" + runMainEnv + "=1 exec " + os.Args[0] + ` "$@"` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "bin", "destination-keen"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	// A command that fails ends the script, and the trap then stops the
	// emulator it started, which would otherwise hold the output open.
	script := "set -e\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + body + "echo '== endpoints'\n" + endpoints + "kill %1" + kill + "wait\n"
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's commands failed: %v\n%s", err, out)
	}
	walkOut, endpointsOut, _ := strings.Cut(string(out), "== endpoints")
	for _, want := range []string{
		`"status":"SUCCEEDED"`,                   // check
		`"destinationStats":{"recordCount":2.0}`, // the state, once both records are acknowledged
		`"_source":"web"`,                        // record 2's $source, as the walkthrough says
		`"uniqueness_token":"dk2_`,               // each event's token
		`{"orders":2}`,                           // duplicates: the second write's copies
	} {
		if !strings.Contains(walkOut, want) {
			t.Errorf("the walkthrough's output lacks %s:\n%s", want, walkOut)
		}
	}
	for _, want := range []string{`"result":[`, `"orders"`} {
		if !strings.Contains(endpointsOut, want) {
			t.Errorf("the endpoints' output lacks %s:\n%s", want, endpointsOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ready.json")); !os.IsNotExist(err) {
		t.Errorf("the emulator left ready.json behind after kill %%1 (%v)", err)
	}
}
