package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"destination-keen/internal/connector"
)

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	closed := refusedAddr(t)
	goodDoc := fmt.Sprintf(`{"project_id":"p","api_key":"SECRET-key-7f3a9c","kafka_bootstrap_servers":%q,"api_url":"https://%s/3.0"}`, closed, closed)
	if err := os.WriteFile(good, []byte(goodDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(`{"project_id":"p"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string // substring; "" means stdout must be empty
		stderr     string // substring; "" means stderr must be empty
		stdoutMsgs int    // protocol lines expected on stdout, -1 to skip
	}{
		{"no command", nil, 2, "", "Usage:", 0},
		{"unknown command", []string{"read"}, 2, "", `unknown command "read"`, 0},
		{"help", []string{"--help"}, 0, "Usage:", "", -1},
		{"version", []string{"--version"}, 0, connector.Version + "\n", "", -1},
		{"spec", []string{"spec"}, 0, `"type":"SPEC"`, "", 1},
		{"spec extra argument", []string{"spec", "x"}, 2, "", `unexpected argument "x"`, 0},
		{"check without config", []string{"check"}, 2, "", "--config is required", 0},
		{"check unknown flag", []string{"check", "--config", good, "--verbose"}, 2, "", "unknown flag: --verbose", 0},
		{"check bad config", []string{"check", "--config", bad}, 0, `"status":"FAILED"`, "", 1},
		{"check unreachable", []string{"check", "--config", good}, 0, `Cannot reach Keen's Kafka brokers`, "", 1},
		{"write without catalog", []string{"write", "--config", good}, 2, "", "--catalog is required", 0},
		{"write bad config", []string{"write", "--config", bad, "--catalog", good}, 1, `"failure_type":"config_error"`, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, errOut)
			}
			if tt.stdout == "" && out != "" || !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout %q, want %q", out, tt.stdout)
			}
			if tt.stderr == "" && errOut != "" || !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr %q, want %q", errOut, tt.stderr)
			}
			if tt.stdoutMsgs >= 0 && strings.Count(out, "\n") != tt.stdoutMsgs {
				t.Errorf("stdout has %d lines, want %d", strings.Count(out, "\n"), tt.stdoutMsgs)
			}
			if strings.Contains(out+errOut, "SECRET-key-7f3a9c") {
				t.Error("the key was printed")
			}
		})
	}
}

// TestReleaseFilesAgree keeps the image label, the Airbyte metadata and the
// binary's version in step, and the entrypoint where Airbyte looks for it.
func TestReleaseFilesAgree(t *testing.T) {
	dockerfile, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	metadata, err := os.ReadFile("../../metadata.yaml")
	if err != nil {
		t.Fatal(err)
	}
	find := func(doc []byte, re string) string {
		m := regexp.MustCompile(re).FindSubmatch(doc)
		if m == nil {
			t.Fatalf("%s not found", re)
		}
		return string(m[1])
	}
	if v := find(dockerfile, `(?m)^LABEL io\.airbyte\.version=(\S+)$`); v != connector.Version {
		t.Errorf("Dockerfile io.airbyte.version %s, binary %s", v, connector.Version)
	}
	if v := find(metadata, `(?m)^\s+dockerImageTag: (\S+)$`); v != connector.Version {
		t.Errorf("metadata.yaml dockerImageTag %s, binary %s", v, connector.Version)
	}
	if n := find(dockerfile, `(?m)^LABEL io\.airbyte\.name=(\S+)$`); n != find(metadata, `(?m)^\s+dockerRepository: (\S+)$`) {
		t.Errorf("image name %s differs from metadata.yaml", n)
	}
	if id := find(metadata, `(?m)^\s+definitionId: (\S+)$`); id != "81740ce8-d764-4ea7-94df-16bb41de36ae" {
		t.Errorf("definitionId %s", id)
	}
	entry := find(dockerfile, `(?m)^ENTRYPOINT \["([^"]+)"\]$`)
	if env := find(dockerfile, `(?m)^ENV AIRBYTE_ENTRYPOINT=(\S+)$`); env != entry {
		t.Errorf("AIRBYTE_ENTRYPOINT %q differs from ENTRYPOINT %q", env, entry)
	}
	if !regexp.MustCompile(`(?m)^USER [1-9][0-9]*:[1-9][0-9]*$`).Match(dockerfile) {
		t.Error("the image must run as a non-root user")
	}
	if !regexp.MustCompile(`CGO_ENABLED=0 go build .* \./cmd/destination-keen`).Match(dockerfile) {
		t.Error("the image must build a static binary from ./cmd/destination-keen")
	}
}
