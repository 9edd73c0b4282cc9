package main

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"destination-keen/tools/keenlocal/emulator"
)

func TestWrongKey(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cfg := e.config(map[string]any{"api_key": "wrong-" + secretKey})
	r := e.run("", "check", "--config", cfg)
	cs := r.ofType("CONNECTION_STATUS")
	if r.code != 0 || len(cs) != 1 || !strings.Contains(fmt.Sprint(cs[0]), "FAILED") || !strings.Contains(fmt.Sprint(cs[0]), "rejected the Project ID and API key") {
		t.Fatalf("check: exit %d %s", r.code, r.stdout)
	}
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	r = e.run(lines(rec("a", `{}`, 1)), "write", "--config", cfg, "--catalog", cat)
	if tr := r.trace(t); r.code != 1 || tr["failure_type"] != "config_error" {
		t.Fatalf("write: exit %d %v", r.code, tr)
	}
}

func TestCheck(t *testing.T) {
	e := newEnv(t, emulator.Options{WriteKey: "write-only-key"})
	r := e.run("", "check", "--config", e.config(nil))
	if cs := r.ofType("CONNECTION_STATUS"); len(cs) != 1 || !strings.Contains(r.stdout, `"status":"SUCCEEDED"`) {
		t.Fatalf("check: %s", r.stdout)
	}
	r = e.run("", "check", "--config", e.config(map[string]any{"api_key": "write-only-key"}))
	if !strings.Contains(r.stdout, "not the project's master key") {
		t.Fatalf("a write key must fail check as not a master key: %s", r.stdout)
	}
}

// TestConfigTypos: a field that is not an option is named in a WARN with
// the option it was probably meant to be, by check (which still succeeds)
// and by write.
func TestConfigTypos(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cfg := e.config(map[string]any{"compresion": "zstd"})
	want := `\"compresion\" is not an option of this connector; did you mean \"compression\"?` // as JSON writes it
	r := e.run("", "check", "--config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, `"status":"SUCCEEDED"`) {
		t.Fatalf("check: exit %d\n%s", r.code, r.stdout)
	}
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	r = e.run(lines(rec("a", `{"n":1}`, 1)), "write", "--config", cfg, "--catalog", cat)
	if r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Fatalf("write: exit %d\n%s", r.code, r.stdout)
	}
}

func TestUnreachableBrokers(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	closed := refusedAddr(t)
	cfg := e.config(map[string]any{"kafka_bootstrap_servers": closed})
	began := time.Now()
	r := e.run("", "check", "--config", cfg)
	if !strings.Contains(r.stdout, `"status":"FAILED"`) || !strings.Contains(r.stdout, "Cannot reach Keen's Kafka brokers") {
		t.Fatalf("check: %s", r.stdout)
	}
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	r = e.run(lines(rec("a", `{}`, 1)), "write", "--config", cfg, "--catalog", cat)
	if tr := r.trace(t); r.code != 1 || tr["failure_type"] != "transient_error" || !strings.Contains(tr["message"].(string), closed) {
		t.Fatalf("write: exit %d %v", r.code, tr)
	}
	if d := time.Since(began); d > 30*time.Second {
		t.Errorf("took %v", d)
	}
}

// TestAPIURLWithoutVersion: an api_url without /3.0 answers 404 for every
// path: check blames api_url, not the (correct) Project ID.
func TestAPIURLWithoutVersion(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	r := e.run("", "check", "--config", e.config(map[string]any{"api_url": strings.TrimSuffix(e.emu.APIURL(), "/3.0")}))
	if !strings.Contains(r.stdout, `"status":"FAILED"`) || !strings.Contains(r.stdout, "api_url: the address answers 404 for Keen's API paths: it should end in /3.0") || strings.Contains(r.stdout, "check the Project ID") {
		t.Fatalf("check: %s", r.stdout)
	}
}

// TestConfigMistakes: an address or URL that cannot be right, or a key no
// HTTP header can carry, is a config_error naming the field, from check and
// from write alike, before anything reaches the network; a scheme in
// capitals is no mistake.
func TestConfigMistakes(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	for _, tt := range []struct {
		name string
		over map[string]any
		want string
	}{
		{"broker port out of range", map[string]any{"kafka_bootstrap_servers": "127.0.0.1:99999"}, "kafka_bootstrap_servers: address 1 of 1 has a port out of range"},
		{"IPv6 without brackets", map[string]any{"kafka_bootstrap_servers": "::1:9092"}, "kafka_bootstrap_servers: address 1 of 1 is not host:port"},
		{"a scheme", map[string]any{"kafka_bootstrap_servers": "https://127.0.0.1:9092"}, "kafka_bootstrap_servers: address 1 of 1 has a scheme"},
		{"semicolons", map[string]any{"kafka_bootstrap_servers": "a:9092;b:9093"}, "addresses are separated by commas"},
		{"API port out of range", map[string]any{"api_url": "https://127.0.0.1:99999/3.0"}, "api_url: has a port out of range"},
		{"a key with a line break", map[string]any{"api_key": secretKey + "\n"}, "api_key: holds a line break"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.config(tt.over)
			r := e.run("", "check", "--config", cfg)
			if !strings.Contains(r.stdout, `"status":"FAILED"`) || !strings.Contains(r.stdout, tt.want) {
				t.Fatalf("check: %s", r.stdout)
			}
			r = e.run(lines(rec("a", `{}`, 1)), "write", "--config", cfg, "--catalog", cat)
			if tr := r.trace(t); r.code != 1 || tr["failure_type"] != "config_error" || !strings.Contains(tr["message"].(string), tt.want) {
				t.Fatalf("write: exit %d %v", r.code, tr)
			}
		})
	}
	t.Run("HTTPS in capitals", func(t *testing.T) {
		cfg := e.config(map[string]any{"api_url": strings.Replace(e.emu.APIURL(), "https://", "HTTPS://", 1)})
		if r := e.run("", "check", "--config", cfg); !strings.Contains(r.stdout, `"status":"SUCCEEDED"`) {
			t.Fatalf("check: %s", r.stdout)
		}
	})
}

// TestBrokersThatAreNotKafka: kafka_bootstrap_servers pointed at a TLS
// port that does not speak Kafka (here, the API's HTTPS port): check and
// write say so as a config_error naming the setting, within seconds.
func TestBrokersThatAreNotKafka(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	u, err := url.Parse(e.emu.APIURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config(map[string]any{"kafka_bootstrap_servers": u.Host})
	began := time.Now()
	r := e.run("", "check", "--config", cfg)
	if !strings.Contains(r.stdout, `"status":"FAILED"`) || !strings.Contains(r.stdout, "kafka_bootstrap_servers") || !strings.Contains(r.stdout, "not as a Kafka broker") {
		t.Fatalf("check: %s", r.stdout)
	}
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	r = e.run(lines(rec("a", `{}`, 1)), "write", "--config", cfg, "--catalog", cat)
	if tr := r.trace(t); r.code != 1 || tr["failure_type"] != "config_error" || !strings.Contains(tr["message"].(string), "kafka_bootstrap_servers") {
		t.Fatalf("write: exit %d %v", r.code, tr)
	}
	if d := time.Since(began); d > 15*time.Second { // 3 s each, the wait for a first answer
		t.Errorf("took %v to find out", d)
	}
}

// TestDeadSeed: one bootstrap address that refuses connections, in any
// position of the list, next to the three live brokers: check succeeds and
// every write syncs, each with a WARN naming the dead address; Keen's
// inbound cluster has three brokers, and one down for maintenance must not
// stop a sync that the others can serve.
func TestDeadSeed(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	dead := refusedAddr(t)
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	live := e.emu.BrokerAddrs()
	synced := 0
	for pos := 0; pos <= len(live); pos++ {
		seeds := slices.Insert(slices.Clone(live), pos, dead)
		cfg := e.config(map[string]any{"kafka_bootstrap_servers": strings.Join(seeds, ",")})
		t.Run(fmt.Sprintf("dead seed at %d", pos), func(t *testing.T) {
			r := e.run("", "check", "--config", cfg)
			if !strings.Contains(r.stdout, `"status":"SUCCEEDED"`) || !strings.Contains(r.logs(), dead) {
				t.Fatalf("check must succeed and name the dead seed in a WARN:\n%s", r.stdout)
			}
			for range 3 { // sarama picks its first seed at random: try several
				r := e.run(lines(rec("a", fmt.Sprintf(`{"n":%d}`, synced), 1), streamState("a", "1")), "write", "--config", cfg, "--catalog", cat)
				if r.code != 0 {
					t.Fatalf("write: exit %d\n%s", r.code, r.stdout)
				}
				if !strings.Contains(r.logs(), "Kafka bootstrap server "+dead+" cannot be reached") {
					t.Fatalf("no WARN names the dead seed:\n%s", r.logs())
				}
				synced++
			}
		})
	}
	if n := len(e.events("a")); n != synced {
		t.Fatalf("%d events, want %d", n, synced)
	}
}

func TestSpecAndVersionAsAProcess(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	r := e.run("", "spec")
	if r.code != 0 || len(r.ofType("SPEC")) != 1 || len(r.lines) != 1 {
		t.Fatalf("spec: %d %s", r.code, r.stdout)
	}
}

// TestUntrustedCertificate: the brokers' and the API's certificate signed by
// a CA the system does not trust is a config_error, for check and write.
func TestUntrustedCertificate(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	other, err := emulator.Start(emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	cfg := e.config(nil)
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	run := func(stdin string, args ...string) result {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), runMainEnv+"=1", "SSL_CERT_FILE="+other.CAFile(), "GORACE=atexit_sleep_ms=0")
		cmd.Stdin = strings.NewReader(stdin)
		out, _ := cmd.Output()
		code := cmd.ProcessState.ExitCode()
		return result{code: code, stdout: string(out)}
	}
	r := run("", "check", "--config", cfg)
	if !strings.Contains(r.stdout, `"status":"FAILED"`) || !strings.Contains(r.stdout, "TLS certificate") {
		t.Fatalf("check: %s", r.stdout)
	}
	r = run(lines(rec("a", `{}`, 1)), "write", "--config", cfg, "--catalog", cat)
	if r.code != 1 || !strings.Contains(r.stdout, `"failure_type":"config_error"`) || !strings.Contains(r.stdout, "not trusted") {
		t.Fatalf("write: %d %s", r.code, r.stdout)
	}
	if strings.Contains(r.stdout, secretKey) {
		t.Fatal("key printed")
	}
}

func TestBadFiles(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	good := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	write := func(name, body string) string {
		p := filepath.Join(e.dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, config, catalog, want string
	}{
		{"empty catalog", e.config(nil), write("empty.json", ""), "The catalog is not valid JSON"},
		{"malformed catalog", e.config(nil), write("bad.json", `{"streams":[`), "The catalog is not valid JSON"},
		{"catalog of the wrong shape", e.config(nil), write("shape.json", `{"streams":{"a":1}}`), "The catalog is invalid: /streams: expected array, but got object"},
		{"empty config", write("c1.json", ""), good, "The config is not valid JSON"},
		{"config of the wrong shape", write("c2.json", `[]`), good, "The config is invalid: config: expected object, but got array"},
		{"missing catalog file", e.config(nil), filepath.Join(e.dir, "nope.json"), "Cannot read the catalog file"},
		// Paths that never end: read up to a bound, not until memory runs out.
		{"a config that never ends", "/dev/zero", good, "The config file /dev/zero is over 1 MiB"},
		{"a catalog that never ends", e.config(nil), "/dev/zero", "The catalog file /dev/zero is over 64 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run("", "write", "--config", tt.config, "--catalog", tt.catalog)
			tr := r.trace(t)
			if r.code != 1 || tr["failure_type"] != "config_error" || !strings.Contains(tr["message"].(string), tt.want) {
				t.Fatalf("exit %d trace %v", r.code, tr)
			}
		})
	}
}

// TestOverwriteWithAWriteKey: overwrite needs the master key; a key the
// brokers accept but the API refuses fails before anything is written.
func TestOverwriteWithAWriteKey(t *testing.T) {
	e := newEnv(t, emulator.Options{WriteKey: "write-only-" + secretKey})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "users", mode: "overwrite", syncID: 4}))
	r := e.run(lines(rec("users", `{"a":1}`, 1)), "write", "--config", e.config(map[string]any{"api_key": "write-only-" + secretKey}), "--catalog", cat)
	tr := r.trace(t)
	if r.code != 1 || tr["failure_type"] != "config_error" || !strings.Contains(tr["message"].(string), `Stream "users" replaces collection "users", which needs the master key`) || !strings.Contains(tr["message"].(string), "the API key is not the project's master key") {
		t.Fatalf("exit %d trace %v", r.code, tr)
	}
	if n := len(e.events("users")); n != 0 {
		t.Fatalf("%d events written before the failed delete", n)
	}
}
