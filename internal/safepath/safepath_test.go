package safepath

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("needs root: directories must be root-owned")
	}
	root := t.TempDir()
	os.Chmod(root, 0o755)
	mk := func(p string, mode os.FileMode) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(full, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	mk("/usr/bin", 0o755)
	mk("/ww", 0o777)
	mk("/sticky", os.ModeSticky|0o777)
	mk("/eve", 0o755)
	os.Chown(filepath.Join(root, "/eve"), 1000, 1000)
	os.WriteFile(filepath.Join(root, "/usr/bin/real"), nil, 0o755)
	link("real", "/usr/bin/rel")
	link("/usr/bin/real", "/usr/bin/abs")
	link("../../../../../../usr/bin/real", "/usr/bin/climb")
	link("/ww/hop", "/usr/bin/via-ww")
	link("/usr/bin/real", "/ww/hop")
	link("/sticky/hop", "/usr/bin/via-sticky")
	link("/usr/bin/real", "/sticky/hop")
	link("/eve", "/usr/bin/eve-dir")
	link("loop", "/usr/bin/loop")
	tests := []struct {
		path, want, err string
	}{
		{"/usr/bin/real", "/usr/bin/real", ""},
		{"/usr/bin/rel", "/usr/bin/real", ""},
		{"/usr/bin/abs", "/usr/bin/real", ""},
		{"/usr/bin/climb", "/usr/bin/real", ""},
		{"/usr/bin/../bin/./real", "/usr/bin/real", ""},
		{"/usr/bin/via-ww", "", "directory /ww is group- or world-writable (mode 0777)"},
		{"/usr/bin/via-sticky", "", "directory /sticky is group- or world-writable (mode 1777)"},
		{"/usr/bin/eve-dir/x", "", "directory /eve is owned by uid 1000, not root"},
		{"/ww/hop", "", "directory /ww is group- or world-writable"},
		{"/usr/bin/real/x", "", "/usr/bin/real is not a directory"},
		{"/usr/bin/missing", "", "does not exist"},
		{"/usr/bin/loop", "", "too many levels of symbolic links"},
	}
	for _, tt := range tests {
		got, err := Resolve(root, "/", tt.path)
		if tt.err == "" && (err != nil || got != tt.want) || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("Resolve(%s) = %q, %v; want %q, %q", tt.path, got, err, tt.want, tt.err)
		}
	}
	if _, err := Resolve(root, "/", "/usr/bin/missing"); !errors.Is(err, ErrNotExist) {
		t.Errorf("missing: %v, want ErrNotExist", err)
	}
	// start is checked too, and relative paths resolve from it.
	if got, err := Resolve(root, "/usr/bin", "rel"); err != nil || got != "/usr/bin/real" {
		t.Errorf("from /usr/bin: %q, %v", got, err)
	}
	if _, err := Resolve(root, "/ww", "hop"); err == nil {
		t.Error("an unsafe start directory was accepted")
	}
}
