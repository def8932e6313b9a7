package source

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kubefrontdoor/frontdoor/translator"
)

// DefaultInterval is how often Dir checks its directory.
const DefaultInterval = time.Second

// Dir reads UpstreamClusters, the Secrets they reference and EndpointSlices
// from the *.yaml / *.yml / *.json files of one directory (file mode: no
// control cluster needed), each decoded by translator.DecodeInputs. It
// polls rather than using inotify so that every way of changing a file is
// seen the same way: in-place edits, atomic renames, and the symlink swaps
// of a mounted ConfigMap.
//
// A file that fails to parse keeps contributing the objects it last parsed
// to, so a half-saved edit never takes a cluster away.
type Dir struct {
	Path     string
	Interval time.Duration // DefaultInterval if 0
	Log      *slog.Logger
	// OnFileError is called for every file that fails to parse (metrics).
	OnFileError func(path string, err error)

	lastGood map[string]translator.Inputs // by file path
	digest   [32]byte
}

// Load reads the directory once and returns the inputs. err is set only if
// the directory itself cannot be read.
func (d *Dir) Load() (translator.Inputs, error) {
	in, _, err := d.load()
	return in, err
}

// Run publishes the inputs at start and after every change, until ctx is
// done.
func (d *Dir) Run(ctx context.Context, p Publisher) error {
	interval := d.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	first := true
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		in, changed, err := d.load()
		switch {
		case err != nil:
			d.log().Error("cannot read config dir; keeping the last config", "dir", d.Path, "error", err)
		case changed || first:
			first = false
			if err := p.Update(ctx, in); err != nil {
				d.log().Error("config not published", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (d *Dir) log() *slog.Logger {
	if d.Log == nil {
		return slog.Default()
	}
	return d.Log
}

// load reads every config file; changed reports whether any byte differs
// from the previous call.
func (d *Dir) load() (translator.Inputs, bool, error) {
	entries, err := os.ReadDir(d.Path)
	if err != nil {
		return translator.Inputs{}, false, err
	}
	if d.lastGood == nil {
		d.lastGood = map[string]translator.Inputs{}
	}
	h := sha256.New()
	seen := map[string]bool{}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !isConfigFile(name) {
			continue
		}
		files = append(files, filepath.Join(d.Path, name))
	}
	sort.Strings(files)
	contents := map[string][]byte{}
	for _, path := range files {
		b, err := os.ReadFile(path) //nolint:gosec // the operator's --config-dir; follows symlinks, as a mounted ConfigMap needs
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
			in, err := translator.DecodeInputs(b)
			if err != nil {
				d.fileError(path, err)
				continue // keep what this file last parsed to
			}
			d.lastGood[path] = in
		}
	}

	var in translator.Inputs
	paths := make([]string, 0, len(d.lastGood))
	for p := range d.lastGood {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		f := d.lastGood[p]
		in.UpstreamClusters = append(in.UpstreamClusters, f.UpstreamClusters...)
		in.Secrets = append(in.Secrets, f.Secrets...)
		in.EndpointSlices = append(in.EndpointSlices, f.EndpointSlices...)
	}
	return in, changed, nil
}

func (d *Dir) fileError(path string, err error) {
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
