package xds

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
	"github.com/kubefrontdoor/frontdoor/translator"
)

// DirSource reads UpstreamClusters and the Secrets they reference from the
// *.yaml / *.yml / *.json files of one directory (the embedded default that
// needs no control cluster). It polls rather than using inotify so that every
// way of changing a file is seen the same way: in-place edits, atomic renames,
// and the symlink swaps of a mounted ConfigMap.
//
// A file that fails to parse keeps contributing the objects it last parsed
// to, so a half-saved edit never takes a cluster away.
type DirSource struct {
	Dir      string
	Interval time.Duration
	Log      *slog.Logger
	// OnFileError is called for every file that fails to parse (metrics).
	OnFileError func(path string, err error)

	lastGood map[string][]object // by file path
	digest   [32]byte
}

type object struct {
	cluster *v1alpha1.UpstreamCluster
	secret  *corev1.Secret
}

// Load reads the directory once and returns the inputs. err is set only if
// the directory itself cannot be read.
func (d *DirSource) Load() (translator.Inputs, error) {
	in, _, err := d.load()
	return in, err
}

// Run calls onChange with the inputs at start and after every change, until
// ctx is done.
func (d *DirSource) Run(ctx context.Context, onChange func(translator.Inputs)) error {
	interval := d.Interval
	if interval <= 0 {
		interval = time.Second
	}
	first := true
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		in, changed, err := d.load()
		switch {
		case err != nil:
			d.log().Error("cannot read config dir; keeping the last config", "dir", d.Dir, "error", err)
		case changed || first:
			first = false
			onChange(in)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (d *DirSource) log() *slog.Logger {
	if d.Log == nil {
		return slog.Default()
	}
	return d.Log
}

// load reads every config file; changed reports whether any byte differs
// from the previous call.
func (d *DirSource) load() (translator.Inputs, bool, error) {
	entries, err := os.ReadDir(d.Dir)
	if err != nil {
		return translator.Inputs{}, false, err
	}
	if d.lastGood == nil {
		d.lastGood = map[string][]object{}
	}
	h := sha256.New()
	seen := map[string]bool{}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !isConfigFile(name) {
			continue
		}
		files = append(files, filepath.Join(d.Dir, name))
	}
	sort.Strings(files)
	contents := map[string][]byte{}
	for _, path := range files {
		b, err := os.ReadFile(path) // follows symlinks, as a mounted ConfigMap needs
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || isDir(path) {
				continue // raced with a rename, or a directory named *.yaml
			}
			d.fileError(path, err)
			continue
		}
		seen[path] = true
		contents[path] = b
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
	}
	var digest [32]byte
	copy(digest[:], h.Sum(nil))
	changed := digest != d.digest
	d.digest = digest

	for path := range d.lastGood {
		if !seen[path] {
			delete(d.lastGood, path) // a deleted file takes its objects with it
		}
	}
	if changed {
		for path, b := range contents {
			objs, err := parseObjects(b)
			if err != nil {
				d.fileError(path, err)
				continue // keep what this file last parsed to
			}
			d.lastGood[path] = objs
		}
	}

	var in translator.Inputs
	paths := make([]string, 0, len(d.lastGood))
	for p := range d.lastGood {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		for _, o := range d.lastGood[p] {
			if o.cluster != nil {
				in.UpstreamClusters = append(in.UpstreamClusters, o.cluster)
			}
			if o.secret != nil {
				in.Secrets = append(in.Secrets, o.secret)
			}
		}
	}
	return in, changed, nil
}

func (d *DirSource) fileError(path string, err error) {
	d.log().Error("config file skipped; its last good objects stay", "file", path, "error", err)
	if d.OnFileError != nil {
		d.OnFileError(path, err)
	}
}

func isConfigFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// parseObjects decodes every document of one file. Unknown kinds are an
// error (a typo must not silently drop a cluster), and so are unknown fields.
func parseObjects(b []byte) ([]object, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var objs []object
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if isEmptyDocument(doc) {
			continue
		}
		o, err := parseObject(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		objs = append(objs, o)
	}
}

func parseObject(doc []byte) (object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return object{}, err
	}
	switch {
	case tm.APIVersion == v1alpha1.GroupVersion.String() && tm.Kind == "UpstreamCluster":
		uc := &v1alpha1.UpstreamCluster{}
		if err := yaml.UnmarshalStrict(doc, uc); err != nil {
			return object{}, fmt.Errorf("UpstreamCluster: %w", err)
		}
		return object{cluster: uc}, nil
	case tm.APIVersion == "v1" && tm.Kind == "Secret":
		s := &corev1.Secret{}
		if err := yaml.UnmarshalStrict(doc, s); err != nil {
			return object{}, fmt.Errorf("Secret: %w", err)
		}
		// stringData is write-only in the API: fold it into data as the
		// apiserver does, so the translator reads one field.
		if len(s.StringData) > 0 {
			if s.Data == nil {
				s.Data = map[string][]byte{}
			}
			for k, v := range s.StringData {
				s.Data[k] = []byte(v)
			}
			s.StringData = nil
		}
		return object{secret: s}, nil
	default:
		return object{}, fmt.Errorf("unsupported object %q %q: want frontdoor.dev/v1alpha1 UpstreamCluster or v1 Secret", tm.APIVersion, tm.Kind)
	}
}

// isEmptyDocument reports whether a YAML document holds only comments and
// blank lines (a leading "---" or a trailing separator produce those).
func isEmptyDocument(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' && !bytes.Equal(line, []byte("---")) {
			return false
		}
	}
	return true
}
