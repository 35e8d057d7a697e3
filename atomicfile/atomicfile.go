// Package atomicfile replaces a file's contents so that a reader, or a
// crash, sees either the old bytes or the new ones and never anything else.
//
// The new bytes go to a temporary file in the same directory, which is
// synced, given the old file's mode and owner, and renamed over the target;
// then the directory is synced so the rename itself survives a power loss.
// A target that exists but is not a regular file is refused.
//
// Nothing is written where someone other than root could redirect it:
// every directory on the way must be root-owned (one that others can write
// only if sticky, and then what is looked up in it must be root's), the
// directory holding the file must be root's alone (not group- or
// world-writable), and a symlink is followed, keeping the link, only where
// it sits in such a directory, so that only root can have placed it. A
// path that fails this is refused with an error wrapping ErrUntrusted that
// names the directory and why.
//
// ReplaceIf adds a guarantee against other writers: it replaces the file
// only if it still holds the bytes the caller planned from, and never
// destroys bytes another process wrote in the meantime. It swaps the files
// with renameat2(RENAME_EXCHANGE), so that whatever it displaces comes back
// to it under the temporary name, is compared, and is put back if it was
// not what the caller expected.
package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/runtimeclassd/runtimeclassd/internal/crashpoint"
)

// ErrChanged means the file no longer held the expected bytes, so it was
// left as it was.
var ErrChanged = errors.New("changed by someone else since it was read")

// WriteFile atomically replaces path's contents with data. An existing
// file's mode and owner are kept; a new file gets mode perm, owned by the
// caller.
func WriteFile(path string, data []byte, perm fs.FileMode) (err error) {
	w, err := begin(path, data, perm)
	if err != nil {
		return err
	}
	defer w.abort(&err)
	if err = os.Rename(w.tmp, w.target); err != nil {
		return err
	}
	w.done = true
	w.step("renamed")
	return w.syncDir()
}

// ReplaceIf atomically replaces path's contents with data if path still
// holds exactly expect; a nil expect means path must not exist. Otherwise
// it returns ErrChanged and path holds what the other writer put there: no
// byte another process wrote is lost, even when it writes while ReplaceIf
// runs. On a filesystem without RENAME_EXCHANGE the check and the rename
// are separate steps, microseconds apart.
func ReplaceIf(path string, data []byte, perm fs.FileMode, expect []byte) (err error) {
	w, err := begin(path, data, perm)
	if err != nil {
		return err
	}
	defer w.abort(&err)
	if expect == nil {
		err = unix.Renameat2(unix.AT_FDCWD, w.tmp, unix.AT_FDCWD, w.target, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("%s: %w (it was created)", w.target, ErrChanged)
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			if _, serr := os.Lstat(w.target); serr == nil {
				return fmt.Errorf("%s: %w (it was created)", w.target, ErrChanged)
			}
			err = os.Rename(w.tmp, w.target)
		}
		if err != nil {
			return err
		}
		w.done = true
		w.step("renamed")
		return w.syncDir()
	}
	err = unix.Renameat2(unix.AT_FDCWD, w.tmp, unix.AT_FDCWD, w.target, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		return w.checkThenRename(expect)
	}
	if errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%s: %w (it was removed)", w.target, ErrChanged)
	}
	if err != nil {
		return err
	}
	w.step("renamed")
	// The temporary name now holds what was displaced.
	displaced, err := os.ReadFile(w.tmp)
	if err != nil {
		return err
	}
	if bytes.Equal(displaced, expect) {
		w.step("displaced checked")
		if err := os.Remove(w.tmp); err != nil {
			return err
		}
		w.done = true
		return w.syncDir()
	}
	w.step("displaced differs")
	// Someone wrote between the caller's read and the exchange: put their
	// bytes back. If yet another write replaced ours meanwhile, that one is
	// the newest and goes back instead; what it replaced would have been
	// overwritten by it anyway.
	placed := data
	for range 8 {
		if err := unix.Renameat2(unix.AT_FDCWD, w.tmp, unix.AT_FDCWD, w.target, unix.RENAME_EXCHANGE); err != nil {
			return fmt.Errorf("putting back the bytes another writer put in %s: %w", w.target, err)
		}
		back, err := os.ReadFile(w.tmp)
		if err != nil {
			return err
		}
		if bytes.Equal(back, placed) {
			if err := os.Remove(w.tmp); err != nil {
				return err
			}
			w.done = true
			if err := w.syncDir(); err != nil {
				return err
			}
			return fmt.Errorf("%s: %w", w.target, ErrChanged)
		}
		placed = displaced
		displaced = back
	}
	return fmt.Errorf("%s keeps changing under concurrent writers; left as it is", w.target)
}

// RemoveIf removes path if it holds exactly expect. Otherwise it returns
// ErrChanged and path holds what another writer put there: the file is
// first renamed aside, compared, and renamed back (never over a file
// someone created meanwhile) if it was not what the caller expected.
func RemoveIf(path string, expect []byte) error {
	target, err := trustedTarget(path)
	if err != nil {
		return err
	}
	dir, base := filepath.Dir(target), filepath.Base(target)
	aside := filepath.Join(dir, TempPrefix(base)+"removing")
	if err := os.Rename(target, aside); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w (it was removed)", target, ErrChanged)
	} else if err != nil {
		return err
	}
	crashpoint.Hit("remove " + base + ": renamed aside")
	got, err := os.ReadFile(aside)
	if err == nil && bytes.Equal(got, expect) {
		if err := os.Remove(aside); err != nil {
			return err
		}
		crashpoint.Hit("remove " + base + ": removed")
		return SyncDir(dir)
	}
	// Not ours to remove: put it back, unless someone created a newer file
	// there meanwhile (theirs wins).
	if err := unix.Renameat2(unix.AT_FDCWD, aside, unix.AT_FDCWD, target, unix.RENAME_NOREPLACE); err != nil {
		os.Remove(aside)
	}
	if err := SyncDir(dir); err != nil {
		return err
	}
	return fmt.Errorf("%s: %w", target, ErrChanged)
}

// writer is a temporary file holding the new bytes, ready to be renamed
// over target.
type writer struct {
	target, tmp string
	dir, base   string
	done        bool // the temporary name no longer holds anything to clean up
}

func (w *writer) step(s string) { crashpoint.Hit("write " + w.base + ": " + s) }

func (w *writer) abort(err *error) {
	if *err != nil && !w.done {
		os.Remove(w.tmp)
	}
}

func (w *writer) syncDir() error {
	if err := SyncDir(w.dir); err != nil {
		return err
	}
	w.step("dir synced")
	return nil
}

// checkThenRename is ReplaceIf's fallback where RENAME_EXCHANGE is not
// supported.
func (w *writer) checkThenRename(expect []byte) error {
	cur, err := os.ReadFile(w.target)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w (it was removed)", w.target, ErrChanged)
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(cur, expect) {
		return fmt.Errorf("%s: %w", w.target, ErrChanged)
	}
	if err := os.Rename(w.tmp, w.target); err != nil {
		return err
	}
	w.done = true
	w.step("renamed")
	return w.syncDir()
}

// begin writes data to a synced temporary file next to path's target, with
// the target's mode and owner.
func begin(path string, data []byte, perm fs.FileMode) (w *writer, err error) {
	target, err := trustedTarget(path)
	if err != nil {
		return nil, err
	}
	mode, uid, gid := perm, -1, -1
	if fi, err := os.Stat(target); err == nil {
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", target)
		}
		mode = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	w = &writer{target: target, dir: filepath.Dir(target), base: filepath.Base(target)}
	w.step("begin")
	f, err := os.CreateTemp(w.dir, TempPrefix(w.base)+"*")
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	w.tmp = tmp
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w.step("temp created")
	if _, err = f.Write(data); err != nil {
		return nil, err
	}
	w.step("temp written")
	if err = f.Chmod(mode); err != nil {
		return nil, err
	}
	if uid >= 0 {
		if err = f.Chown(uid, gid); err != nil {
			return nil, err
		}
	}
	if err = f.Sync(); err != nil {
		return nil, err
	}
	w.step("temp synced")
	if err = f.Close(); err != nil {
		return nil, err
	}
	return w, nil
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
	if _, err := os.Lstat(filepath.Dir(target)); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if target, err = trustedTarget(path); err != nil {
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

// Resolve returns the file that path names after following symlinks: the
// file WriteFile and ReplaceIf replace.
func Resolve(path string) (string, error) { return resolve(path) }
