package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root: the checks want root-owned directories")
	}
}

// TestRefusesUntrustedDirectory: a directory on the way that others can
// write, or that a user owns, makes every writer refuse, naming it.
func TestRefusesUntrustedDirectory(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		name string
		prep func(d string)
		want string
	}{
		{"world-writable", func(d string) { os.Chmod(d, 0o777) }, "is group- or world-writable (mode 0777)"},
		{"group-writable", func(d string) { os.Chmod(d, 0o775) }, "is group- or world-writable (mode 0775)"},
		{"sticky world-writable", func(d string) { os.Chmod(d, os.ModeSticky|0o777) }, "is group- or world-writable (mode 1777)"},
		{"user-owned", func(d string) { os.Chown(d, 1000, 1000) }, "is owned by uid 1000, not root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "features.d")
			os.Mkdir(d, 0o755)
			p := filepath.Join(d, "f")
			os.WriteFile(p, []byte("old"), 0o644)
			tc.prep(d)
			for name, f := range map[string]func() error{
				"WriteFile": func() error { return WriteFile(p, []byte("new"), 0o644) },
				"ReplaceIf": func() error { return ReplaceIf(p, []byte("new"), 0o644, []byte("old")) },
				"RemoveIf":  func() error { return RemoveIf(p, []byte("old")) },
			} {
				err := f()
				if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "directory "+d+" "+tc.want) {
					t.Errorf("%s: err = %v, want %q", name, err, tc.want)
				}
			}
			if b, _ := os.ReadFile(p); string(b) != "old" {
				t.Fatalf("file now holds %q", b)
			}
		})
	}
}

// TestRefusesUserSymlink: a symlink in a directory others can write is
// not followed; the file it points to keeps its bytes.
func TestRefusesUserSymlink(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	victim := filepath.Join(root, "config.toml")
	os.WriteFile(victim, []byte("precious"), 0o644)
	d := filepath.Join(root, "features.d")
	os.Mkdir(d, 0o777)
	os.Chmod(d, 0o777)
	link := filepath.Join(d, "runtimeclassd")
	os.Symlink(victim, link)
	os.Lchown(link, 1000, 1000)
	if err := WriteFile(link, []byte("labels"), 0o644); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Fatalf("victim now holds %q", b)
	}
	// The same link in a root-only directory is root's: followed, kept.
	os.Chmod(d, 0o755)
	os.Lchown(link, 0, 0)
	if err := WriteFile(link, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "new" {
		t.Fatalf("victim holds %q", b)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("link replaced")
	}
}

// TestRefusesLinkToUntrustedDirectory: a root-placed symlink whose target
// lies in a directory others can write is refused too.
func TestRefusesLinkToUntrustedDirectory(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	shared := filepath.Join(root, "shared")
	os.Mkdir(shared, 0o755)
	os.Chmod(shared, 0o777)
	target := filepath.Join(shared, "config.toml")
	os.WriteFile(target, []byte("old"), 0o644)
	link := filepath.Join(root, "config.toml")
	os.Symlink(target, link)
	err := ReplaceIf(link, []byte("new"), 0o644, []byte("old"))
	if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), shared) {
		t.Fatalf("err = %v", err)
	}
	// A directory symlink on the way through a user's directory likewise.
	user := filepath.Join(root, "user")
	os.Mkdir(user, 0o755)
	os.Chown(user, 1000, 1000)
	os.Mkdir(filepath.Join(user, "d"), 0o755)
	dl := filepath.Join(root, "dl")
	os.Symlink(filepath.Join(user, "d"), dl)
	if err := WriteFile(filepath.Join(dl, "f"), []byte("x"), 0o644); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "owned by uid 1000") {
		t.Fatalf("err = %v", err)
	}
}

// TestMkdirAllRefusesUntrusted: an existing directory others can write is
// refused, not used; nor is one created under it.
func TestMkdirAllRefusesUntrusted(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	d := filepath.Join(root, "state")
	os.Mkdir(d, 0o777)
	os.Chmod(d, 0o777)
	if err := MkdirAll(d, 0o700); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "refusing to use "+d) {
		t.Fatalf("err = %v", err)
	}
	if err := MkdirAll(filepath.Join(d, "backups"), 0o700); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "refusing to create") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Lstat(filepath.Join(d, "backups")); err == nil {
		t.Fatal("created under an untrusted directory")
	}
	ok := filepath.Join(root, "a", "b")
	if err := MkdirAll(ok, 0o700); err != nil {
		t.Fatal(err)
	}
}
