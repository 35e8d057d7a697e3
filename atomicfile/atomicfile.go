// Package atomicfile replaces a file's contents so that a reader, or a
// crash, sees either the old bytes or the new ones and never anything else.
//
// The new bytes go to a temporary file in the same directory, which is
// synced, given the old file's mode and owner, and renamed over the target;
// then the directory is synced so the rename itself survives a power loss.
// A symlink target is followed and the link is kept. A target that exists
// but is not a regular file is refused.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/runtimeclassd/runtimeclassd/internal/crashpoint"
)

// WriteFile atomically replaces path's contents with data. An existing
// file's mode and owner are kept; a new file gets mode perm, owned by the
// caller.
func WriteFile(path string, data []byte, perm fs.FileMode) (err error) {
	target, err := resolve(path)
	if err != nil {
		return err
	}
	mode, uid, gid := perm, -1, -1
	if fi, err := os.Stat(target); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", target)
		}
		mode = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dir, base := filepath.Dir(target), filepath.Base(target)
	step := func(s string) { crashpoint.Hit("write " + base + ": " + s) }
	step("begin")
	f, err := os.CreateTemp(dir, TempPrefix(base)+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	step("temp created")
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	step("temp written")
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if uid >= 0 {
		if err = f.Chown(uid, gid); err != nil {
			return err
		}
	}
	if err = f.Sync(); err != nil {
		return err
	}
	step("temp synced")
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, target); err != nil {
		return err
	}
	step("renamed")
	if err = SyncDir(dir); err != nil {
		return err
	}
	step("dir synced")
	return nil
}

// TempPrefix is how the temporary files for base begin: hidden, and named
// after the file they will replace.
func TempPrefix(base string) string { return "." + base + ".tmp-" }

// RemoveTemps deletes the temporary files that a writer killed before its
// rename left next to path (or next to the file path's symlink points to),
// and returns their names. Call it only while no other process writes that
// file.
func RemoveTemps(path string) ([]string, error) {
	target, err := resolve(path)
	if err != nil {
		return nil, err
	}
	dir, base := filepath.Dir(target), filepath.Base(target)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), TempPrefix(base)) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
		removed = append(removed, p)
	}
	if len(removed) > 0 {
		return removed, SyncDir(dir)
	}
	return nil, nil
}

// SyncDir fsyncs a directory, making renames and removals in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// resolve follows symlinks at path, so that the link is kept and its target
// replaced. A dangling link resolves to where it points.
func resolve(path string) (string, error) {
	for range 40 {
		fi, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return path, nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return path, nil
		}
		link, err := os.Readlink(path)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(link) {
			link = filepath.Join(filepath.Dir(path), link)
		}
		path = link
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", path)
}
