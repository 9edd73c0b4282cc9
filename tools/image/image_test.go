package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"destination-keen/internal/connector"
	"destination-keen/schemas"
	"destination-keen/tools/keenlocal/emulator"
)

const root = "../.."

// binaries cross-compiles the connector as make image does.
func binaries(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range Platforms {
		bin := filepath.Join(dir, "linux-"+p.Architecture, "destination-keen")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/destination-keen")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+p.Architecture)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build for %s: %v\n%s", p.Architecture, err, b)
		}
		out[p.Architecture] = bin
	}
	return out
}

// TestImage builds the image as make image does and proves it: the same
// digest twice, its config against metadata.yaml and the binary, its size,
// the host architecture's root filesystem running spec and check as the
// image's user, and a push to a registry and a pull back by digest.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: cross-compiling two binaries")
	}
	dir := t.TempDir()
	s := Spec{Version: connector.Version, Binaries: binaries(t, dir), Created: time.Unix(1700000000, 0).UTC(), Revision: "0123abcd"}
	idx, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("reproducible", func(t *testing.T) {
		again, err := Build(s)
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := again.Digest(); d != digest {
			t.Fatalf("two builds of the same binaries: %s and %s", digest, d)
		}
		s2 := s
		s2.Created = s.Created.Add(time.Second)
		later, _ := Build(s2)
		if d, _ := later.Digest(); d == digest {
			t.Fatal("the digest does not depend on the build time: something else stamps the image")
		}
	})

	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != "application/vnd.oci.image.index.v1+json" || im.Annotations["org.opencontainers.image.revision"] != "0123abcd" {
		t.Errorf("index %s, annotations %v", im.MediaType, im.Annotations)
	}
	var platforms []string
	var host v1.Image
	for _, m := range im.Manifests {
		platforms = append(platforms, m.Platform.OS+"/"+m.Platform.Architecture)
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkConfig(t, img, m.Platform)
		if size, err := CompressedSize(img); err != nil || size > 15e6 {
			t.Errorf("%s: %d bytes compressed (%v), over the 15 MB goal", m.Platform.Architecture, size, err)
		} else {
			t.Logf("%s/%s: %s, %.1f MB compressed", m.Platform.OS, m.Platform.Architecture, m.Digest, float64(size)/1e6)
		}
		if m.Platform.Architecture == runtime.GOARCH {
			host = img
		}
	}
	if !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Fatalf("platforms %v", platforms)
	}
	if host == nil {
		t.Skipf("no image for this machine's architecture %s to run", runtime.GOARCH)
	}
	t.Run("runs as its user", func(t *testing.T) { runImage(t, host, s.Binaries[runtime.GOARCH]) })
	t.Run("written and loaded", func(t *testing.T) { written(t, idx, s, digest) })
	t.Run("pushed and pulled", func(t *testing.T) { pushPull(t, idx, digest) })
}

func checkConfig(t *testing.T, img v1.Image, p *v1.Platform) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	metadata, err := os.ReadFile(filepath.Join(root, "metadata.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	field := func(re string) string {
		m := regexp.MustCompile(re).FindSubmatch(metadata)
		if m == nil {
			t.Fatalf("metadata.yaml has no %s", re)
		}
		return string(m[1])
	}
	c := cf.Config
	switch {
	case cf.OS != p.OS || cf.Architecture != p.Architecture:
		t.Errorf("config for %s/%s, index says %s/%s", cf.OS, cf.Architecture, p.OS, p.Architecture)
	case c.Labels["io.airbyte.name"] != field(`(?m)^\s+dockerRepository: (\S+)$`):
		t.Errorf("io.airbyte.name %q", c.Labels["io.airbyte.name"])
	case c.Labels["io.airbyte.version"] != field(`(?m)^\s+dockerImageTag: (\S+)$`):
		t.Errorf("io.airbyte.version %q", c.Labels["io.airbyte.version"])
	case !slices.Equal(c.Entrypoint, []string{Entrypoint}) || !slices.Contains(c.Env, "AIRBYTE_ENTRYPOINT="+c.Entrypoint[0]):
		t.Errorf("entrypoint %v, env %v", c.Entrypoint, c.Env)
	case c.User == "" || strings.HasPrefix(c.User, "0:") || c.User == "0" || c.User == "root":
		t.Errorf("user %q: the image must run as a non-root user", c.User)
	}
}

// runImage extracts the image's root filesystem and runs its entrypoint
// from there: --version, spec, and check against the emulator with its CA
// given as the README tells users to give a custom CA.
func runImage(t *testing.T, img v1.Image, built string) {
	fsDir := filepath.Join(t.TempDir(), "rootfs")
	extract(t, img, fsDir)
	cf, _ := img.ConfigFile()
	exe := filepath.Join(fsDir, cf.Config.Entrypoint[0])
	var cred *syscall.Credential
	if os.Getuid() == 0 { // run as the image's user, as a container would
		cred = &syscall.Credential{Uid: 65532, Gid: 65532}
		for d := fsDir; d != "/" && d != "."; d = filepath.Dir(d) {
			_ = os.Chmod(d, 0o755) // t.TempDir's folders are the test's own
		}
	}
	run := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(exe, args...)
		cmd.Dir = filepath.Join(fsDir, cf.Config.WorkingDir)
		cmd.Env = append(cf.Config.Env, env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	want, _ := os.ReadFile(built)
	got, _ := os.ReadFile(exe)
	if !bytes.Equal(want, got) {
		t.Fatal("the image's binary is not the one built")
	}
	if out, err := run(nil, "--version"); err != nil || strings.TrimSpace(out) != cf.Config.Labels["io.airbyte.version"] {
		t.Errorf("--version: %q (%v), label %q", out, err, cf.Config.Labels["io.airbyte.version"])
	}
	out, err := run(nil, "spec")
	if err != nil {
		t.Fatalf("spec: %v\n%s", err, out)
	}
	if err := schemas.Validate(schemas.AirbyteMessage, []byte(strings.TrimSpace(out))); err != nil || !strings.Contains(out, `"type":"SPEC"`) {
		t.Fatalf("spec printed no valid SPEC (%v): %s", err, out)
	}

	e, err := emulator.Start(emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	c := e.Config()
	cfgDir := filepath.Join(fsDir, "tmp")
	cfg := c.JSON(nil)
	cfgPath := filepath.Join(cfgDir, "config.json")
	ca := filepath.Join(cfgDir, "ca.pem")
	pem, _ := os.ReadFile(c.CAFile)
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = run([]string{"SSL_CERT_FILE=" + ca}, "check", "--config", cfgPath)
	if err != nil || !strings.Contains(out, `"status":"SUCCEEDED"`) {
		t.Fatalf("check against the emulator: %v\n%s", err, out)
	}
	// Without the CA, the brokers' certificate is not trusted: the image
	// trusts Mozilla's roots (compiled in), not anything it happens to find.
	out, _ = run(nil, "check", "--config", cfgPath)
	if !strings.Contains(out, `"status":"FAILED"`) || !strings.Contains(out, "not trusted") {
		t.Errorf("check without the emulator's CA must fail on trust:\n%s", out)
	}
}

func extract(t *testing.T, img v1.Image, dir string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, filepath.Clean(dir)+string(os.PathSeparator)) {
			t.Fatalf("entry %q escapes the root", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			mode := os.FileMode(h.Mode).Perm()
			if h.Mode&0o1000 != 0 {
				mode |= os.ModeSticky
			}
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode).Perm())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		default:
			t.Fatalf("unexpected entry %q of type %c", h.Name, h.Typeflag)
		}
	}
}

// written: the OCI layout holds the index under its tag, and the archives
// exist.
func written(t *testing.T, idx v1.ImageIndex, s Spec, digest v1.Hash) {
	dir := t.TempDir()
	files, err := Write(idx, s, dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(filepath.Join(dir, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := top.IndexManifest()
	if err != nil || len(im.Manifests) != 1 || im.Manifests[0].Digest != digest || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != s.Version {
		t.Fatalf("layout index %+v (%v), want %s tagged %s", im, err, digest, s.Version)
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	// The archive is the layout, entry for entry.
	a, err := os.Open(filepath.Join(dir, "destination-keen-"+s.Version+".oci.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var names []string
	tr := tar.NewReader(bufio.NewReader(a))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	if !slices.Contains(names, "index.json") || !slices.Contains(names, "oci-layout") || !slices.Contains(names, "blobs/sha256/"+digest.Hex) {
		t.Errorf("the OCI archive holds %v", names)
	}
}

// pushPull pushes the index to a registry on loopback (the library's own)
// and pulls it back by digest.
func pushPull(t *testing.T, idx v1.ImageIndex, digest v1.Hash) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	tag, err := name.NewTag(u.Host+"/airbyte/destination-keen:"+connector.Version, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := remote.WriteIndex(tag, idx, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewDigest(u.Host+"/airbyte/destination-keen@"+digest.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Index(ref, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := pulled.Digest(); d != digest {
		t.Fatalf("pulled %s, pushed %s", d, digest)
	}
	img, err := remote.Image(tag, remote.WithContext(ctx), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
	if err != nil {
		t.Fatal(err)
	}
	if cf, err := img.ConfigFile(); err != nil || cf.Architecture != "arm64" {
		t.Fatalf("pulled the arm64 image: %v, %v", cf, err)
	}
}

// TestDockerfileInStep: the Dockerfile, for those who build with Docker,
// says what tools/image builds: entrypoint, working folder, labels, env and
// user.
func TestDockerfileInStep(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	final := b[bytes.LastIndex(b, []byte("\nFROM ")):] // the runtime stage
	all := func(re string) []string {
		var out []string
		for _, m := range regexp.MustCompile(re).FindAllSubmatch(final, -1) {
			out = append(out, string(m[1]))
		}
		return out
	}
	var labels []string
	for k, v := range (Spec{Version: connector.Version}).Labels() {
		labels = append(labels, k+"="+v)
	}
	slices.Sort(labels)
	got := all(`(?m)^LABEL (\S+)$`)
	slices.Sort(got)
	if !slices.Equal(got, labels) {
		t.Errorf("Dockerfile labels %v, image %v", got, labels)
	}
	if env := all(`(?m)^ENV (\S+)$`); !slices.Equal(env, Env()) {
		t.Errorf("Dockerfile env %v, image %v", env, Env())
	}
	if u := all(`(?m)^USER (\S+)$`); !slices.Equal(u, []string{User}) {
		t.Errorf("Dockerfile user %v, image %s", u, User)
	}
	if w := all(`(?m)^WORKDIR (\S+)$`); !slices.Equal(w, []string{WorkingDir}) {
		t.Errorf("Dockerfile workdir %v, image %s", w, WorkingDir)
	}
	if e := all(`(?m)^ENTRYPOINT \["([^"]+)"\]$`); !slices.Equal(e, []string{Entrypoint}) {
		t.Errorf("Dockerfile entrypoint %v, image %s", e, Entrypoint)
	}
}
