package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What the image is; the Dockerfile says the same (a test keeps them in
// step).
const (
	Name       = "airbyte/destination-keen"
	Entrypoint = "/airbyte/destination-keen"
	WorkingDir = "/airbyte"
	// User is distroless's nonroot, by number: a scratch image has no
	// names to resolve, and Kubernetes' runAsNonRoot needs a number.
	User = "65532:65532"
)

// Platforms are the architectures Airbyte publishes its connectors for.
var Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// Spec is what an image build needs.
type Spec struct {
	Version  string            // the connector's version: the io.airbyte.version label
	Binaries map[string]string // architecture -> path of the static binary
	Created  time.Time         // every timestamp in the image: reproducible builds
	Source   string            // org.opencontainers.image.source, when known
	Revision string            // org.opencontainers.image.revision, when known
}

// Labels are the image config's labels: Airbyte's, and the OCI title and
// version. Source and revision are annotations of the index, so that the
// images of one version do not differ by commit.
func (s Spec) Labels() map[string]string {
	return map[string]string{"io.airbyte.name": Name, "io.airbyte.version": s.Version,
		"org.opencontainers.image.title": "destination-keen", "org.opencontainers.image.version": s.Version}
}

// Env is the image config's environment: Airbyte runs AIRBYTE_ENTRYPOINT.
func Env() []string {
	return []string{"AIRBYTE_ENTRYPOINT=" + Entrypoint}
}

// Build makes the OCI image index: one image per platform, each a single
// layer (the binary, /etc/passwd and /etc/group naming the user, the
// folders they live in) on nothing, with fixed timestamps and sorted
// entries, so that the same binaries give the same digest.
func Build(s Spec) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range Platforms {
		bin, ok := s.Binaries[p.Architecture]
		if !ok {
			return nil, fmt.Errorf("no binary for %s", p.Architecture)
		}
		img, err := s.image(p, bin)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Architecture, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	ann := map[string]string{"org.opencontainers.image.version": s.Version, "org.opencontainers.image.created": s.Created.UTC().Format(time.RFC3339)}
	if s.Source != "" {
		ann["org.opencontainers.image.source"] = s.Source
	}
	if s.Revision != "" {
		ann["org.opencontainers.image.revision"] = s.Revision
	}
	return mutate.Annotations(idx, ann).(v1.ImageIndex), nil
}

func (s Spec) image(p v1.Platform, bin string) (v1.Image, error) {
	exe, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	fs, err := rootfs(exe, s.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(fs)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer,
		History: v1.History{Created: v1.Time{Time: s.Created}, CreatedBy: "destination-keen tools/image", Comment: "the static binary, its user"}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = p.OS, p.Architecture
	cf.Created = v1.Time{Time: s.Created}
	cf.Author = "destination-keen"
	cf.Config = v1.Config{
		Entrypoint: []string{Entrypoint},
		Env:        Env(),
		Labels:     s.Labels(),
		User:       User,
		WorkingDir: WorkingDir,
	}
	return mutate.ConfigFile(img, cf)
}

// rootfs is the layer's tar: sorted, owned by root except the user's
// home, every time the build's.
func rootfs(exe []byte, created time.Time) ([]byte, error) {
	type entry struct {
		name string
		mode int64
		data []byte
		uid  int
	}
	entries := []entry{
		{name: "airbyte/", mode: 0o755},
		{name: "airbyte/destination-keen", mode: 0o755, data: exe},
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "home/", mode: 0o755},
		{name: "home/nonroot/", mode: 0o700, uid: 65532},
		{name: "tmp/", mode: 0o1777},
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: created.Truncate(time.Second), Format: tar.FormatUSTAR}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if e.uid != 0 {
			h.Uname, h.Gname = "nonroot", "nonroot"
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
