package kubelet

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// sha256Of reads in to the end and prints "LENGTH HEX".
func sha256Of(in io.Reader, out io.Writer) error {
	h := sha256.New()
	var n int64
	if in != nil {
		var err error
		if n, err = io.Copy(h, in); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(out, "%d %x\n", n, h.Sum(nil))
	return err
}

// tar is the two tar invocations kubectl cp makes, over the in-memory file
// system: "tar -xmf - [-C DIR]" (also with --no-same-* flags) stores every
// regular file of the archive on stdin under DIR; "tar cf - PATH" writes
// PATH as an archive, named as GNU tar names it (without the leading "/").
func (k *Kubelet) tar(args []string, in io.Reader, out io.Writer) error {
	dir := "/"
	var create, extract bool
	var target string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-C" && i+1 < len(args):
			dir = args[i+1]
			i++
		case a == "cf":
			create = true
		case a == "-xmf" || a == "xf" || a == "-xf":
			extract = true
		case a == "-" || strings.HasPrefix(a, "--no-same-"):
		default:
			target = a
		}
	}
	switch {
	case extract:
		if in == nil {
			return exitError(2)
		}
		tr := tar.NewReader(in)
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if hdr.Typeflag != tar.TypeReg {
				continue
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return err
			}
			k.mu.Lock()
			k.files[path.Join("/", dir, hdr.Name)] = b
			k.mu.Unlock()
		}
	case create && target != "":
		p := path.Join("/", target)
		k.mu.Lock()
		b, ok := k.files[p]
		k.mu.Unlock()
		if !ok {
			return exitError(2)
		}
		tw := tar.NewWriter(out)
		if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(p, "/"), Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
		return tw.Close()
	}
	return exitError(2)
}
