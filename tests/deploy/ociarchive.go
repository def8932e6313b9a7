package deploy

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
)

// OCIImage is what an OCI archive (podman save --format oci-archive)
// actually ships: its image config and every file of its layers.
type OCIImage struct {
	// RefName is the index's org.opencontainers.image.ref.name annotation.
	RefName string
	Config  struct {
		User       string            `json:"User"`
		Env        []string          `json:"Env"`
		Entrypoint []string          `json:"Entrypoint"`
		Labels     map[string]string `json:"Labels"`
	}
	// Files are the paths of the regular files and symlinks in the layers
	// (no leading slash, sorted); Modes their permission bits.
	Files []string
	Modes map[string]int64
}

// ReadOCIArchive reads an oci-archive tar: index.json → manifest → config
// and layers. It reads the archive itself, so a test checks the artifact
// that would be pushed, not podman's local storage.
func ReadOCIArchive(file string) (*OCIImage, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	blobs := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		blobs[path.Clean(h.Name)] = b
	}
	blob := func(digest string) ([]byte, error) {
		algo, hex, ok := strings.Cut(digest, ":")
		if b, found := blobs[path.Join("blobs", algo, hex)]; ok && found {
			return b, nil
		}
		return nil, fmt.Errorf("blob %s missing from the archive", digest)
	}
	type descriptor struct {
		Digest      string            `json:"digest"`
		MediaType   string            `json:"mediaType"`
		Annotations map[string]string `json:"annotations"`
	}
	var index struct{ Manifests []descriptor }
	if err := json.Unmarshal(blobs["index.json"], &index); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	if len(index.Manifests) != 1 {
		return nil, fmt.Errorf("index.json lists %d manifests, want 1", len(index.Manifests))
	}
	img := &OCIImage{RefName: index.Manifests[0].Annotations["org.opencontainers.image.ref.name"], Modes: map[string]int64{}}
	mb, err := blob(index.Manifests[0].Digest)
	if err != nil {
		return nil, err
	}
	var manifest struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	if err := json.Unmarshal(mb, &manifest); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	cb, err := blob(manifest.Config.Digest)
	if err != nil {
		return nil, err
	}
	var config struct{ Config json.RawMessage }
	if err := json.Unmarshal(cb, &config); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	if err := json.Unmarshal(config.Config, &img.Config); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	for _, l := range manifest.Layers {
		lb, err := blob(l.Digest)
		if err != nil {
			return nil, err
		}
		if err := img.addLayer(lb); err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
	}
	slices.Sort(img.Files)
	return img, nil
}

func (img *OCIImage) addLayer(b []byte) error {
	var r io.Reader = bytes.NewReader(b)
	if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return err
		}
		r = gz
	}
	tr := tar.NewReader(bufio.NewReader(r))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink {
			name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
			img.Files = append(img.Files, name)
			img.Modes[name] = h.Mode
		}
	}
}
