// Command image builds the connector's container image without a Docker
// daemon, with go-containerregistry: an OCI image index for linux/amd64 and
// linux/arm64, each image one layer on nothing (the static binary, a
// non-root user), written as an OCI layout, as an OCI archive that
// `podman load` and Docker 25+ (containerd image store) load, and as a
// docker-archive per architecture that any `docker load` takes. The same
// binaries and the same --created give the same digest. `make image` runs
// it.
package main

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/spf13/pflag"

	"destination-keen/internal/connector"
)

func main() {
	bins := pflag.StringToString("bin", nil, "static binary per architecture: amd64=PATH,arm64=PATH")
	out := pflag.String("out", "bin/image", "output folder")
	created := pflag.Int64("created", 0, "the image's timestamps, in Unix seconds (SOURCE_DATE_EPOCH)")
	source := pflag.String("source", "", "org.opencontainers.image.source")
	revision := pflag.String("revision", "", "org.opencontainers.image.revision")
	pflag.Parse()
	s := Spec{Version: connector.Version, Binaries: *bins, Created: time.Unix(*created, 0).UTC(), Source: *source, Revision: *revision}
	if err := run(s, *out); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(s Spec, out string) error {
	idx, err := Build(s)
	if err != nil {
		return err
	}
	files, err := Write(idx, s, out)
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s:%s  %s\n", Name, s.Version, digest)
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, m := range im.Manifests {
		img, err := idx.Image(m.Digest)
		if err != nil {
			return err
		}
		size, err := CompressedSize(img)
		if err != nil {
			return err
		}
		fmt.Printf("  %s/%s  %s  %.1f MB compressed\n", m.Platform.OS, m.Platform.Architecture, m.Digest, float64(size)/1e6)
	}
	for _, f := range files {
		fmt.Println("  wrote", f)
	}
	return nil
}

// CompressedSize is what pulling img transfers: its config, manifest and
// layers.
func CompressedSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, err
	}
	n := m.Config.Size + int64(len(raw))
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

// Write writes idx under dir: the OCI layout (oci/), its archive
// (destination-keen-VERSION.oci.tar) and a docker-archive per architecture.
func Write(idx v1.ImageIndex, s Spec, dir string) ([]string, error) {
	layoutDir := filepath.Join(dir, "oci")
	if err := os.RemoveAll(layoutDir); err != nil {
		return nil, err
	}
	p, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		return nil, err
	}
	ref := "docker.io/" + Name + ":" + s.Version
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": s.Version,
		"io.containerd.image.name":          ref,
	})); err != nil {
		return nil, err
	}
	archive := filepath.Join(dir, "destination-keen-"+s.Version+".oci.tar")
	if err := tarDir(layoutDir, archive, s.Created); err != nil {
		return nil, err
	}
	files := []string{layoutDir, archive}
	tag, err := name.NewTag(ref)
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, m := range im.Manifests {
		img, err := idx.Image(m.Digest)
		if err != nil {
			return nil, err
		}
		f := filepath.Join(dir, "destination-keen-"+s.Version+"-"+m.Platform.Architecture+".docker.tar")
		if err := tarball.WriteToFile(f, tag, img); err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// tarDir archives a folder with sorted entries and fixed times.
func tarDir(src, dst string, mtime time.Time) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error { // WalkDir goes in lexical order
		if err != nil || p == src {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Mode: 0o644, Format: tar.FormatUSTAR}
		if d.IsDir() {
			h.Name, h.Typeflag, h.Mode = h.Name+"/", tar.TypeDir, 0o755
			return tw.WriteHeader(h)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h.Typeflag, h.Size = tar.TypeReg, info.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		r, err := os.Open(p)
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = io.Copy(tw, r)
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
