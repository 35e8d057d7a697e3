package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrUntrusted means a file would be written somewhere that someone other
// than root could redirect or replace: a directory on the way that is not
// root's alone, or a symlink placed by someone else.
var ErrUntrusted = errors.New("not root's alone")

// maxLinks is the kernel's limit on symlinks followed in one lookup.
const maxLinks = 40

// trustedTarget resolves path the way the kernel would, one hop at a time,
// and returns the file it names, checking that nobody but root can change
// where it leads:
//   - every directory in which an entry is looked up is root-owned; one
//     that others can write is allowed only if it is sticky and the entry
//     looked up in it is root's (nobody else can then rename or remove it),
//   - the directory that holds the file itself (the final target, after
//     every symlink) is root-owned and not group- or world-writable, since
//     the write creates a temporary file there and renames it,
//   - a symlink on the way, the final component included, is followed
//     only where it sits in such a directory (so only root can have put
//     it there).
//
// A missing final component is fine (the file is created); a missing
// directory is an error.
func trustedTarget(path string) (string, error) {
	if !filepath.IsAbs(path) {
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", err
		}
		path = abs
	}
	final, err := walk(path, true)
	if err != nil {
		return "", fmt.Errorf("refusing to write %s: %w", path, err)
	}
	return final, nil
}

// TrustedDir checks that dir, an existing directory, is one where only
// root can write, reached through directories only root can change (see
// trustedTarget). It returns dir resolved.
func TrustedDir(dir string) (string, error) {
	if !filepath.IsAbs(dir) {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", err
		}
		dir = abs
	}
	d, err := walk(dir, false)
	if err != nil {
		return "", err
	}
	fi, err := os.Lstat(d)
	if err != nil {
		return "", fmt.Errorf("directory %s: %w", d, err)
	}
	if err := rootOnly(d, fi); err != nil {
		return "", err
	}
	return d, nil
}

// MkdirAll creates dir and its missing parents with perm, after checking
// that the deepest existing one is a trusted directory (TrustedDir), and
// then checks dir itself. An existing dir that others can write, or owned
// by someone else, is refused, not used.
func MkdirAll(dir string, perm fs.FileMode) error {
	dir = filepath.Clean(dir)
	if !filepath.IsAbs(dir) {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return err
		}
		dir = abs
	}
	existing := dir
	for {
		if _, err := os.Lstat(existing); err == nil {
			break
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			break
		}
		existing = parent
	}
	if existing != dir {
		if _, err := TrustedDir(existing); err != nil {
			return fmt.Errorf("refusing to create %s: %w", dir, err)
		}
		if err := os.MkdirAll(dir, perm); err != nil {
			return err
		}
	}
	if _, err := TrustedDir(dir); err != nil {
		return fmt.Errorf("refusing to use %s: %w", dir, err)
	}
	return nil
}

// walk resolves path hop by hop from "/", checking each directory looked
// in. With file, the last component may be missing or a file, and the
// directory holding it must be root's alone; otherwise path must be a
// directory.
func walk(path string, file bool) (string, error) {
	links := 0
	done := "/"
	rest := strings.Split(path, "/")
	for len(rest) > 0 {
		part := rest[0]
		rest = rest[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			done = filepath.Dir(done)
			continue
		}
		last := file && allEmpty(rest)
		dfi, err := os.Lstat(done)
		if err != nil {
			return "", fmt.Errorf("directory %s: %w", done, err)
		}
		if !dfi.IsDir() {
			return "", fmt.Errorf("%s is not a directory", done)
		}
		if err := owner(done, dfi); err != nil {
			return "", err
		}
		next := filepath.Join(done, part)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) && last {
			if err := rootOnly(done, dfi); err != nil {
				return "", err
			}
			return next, nil
		}
		if err != nil {
			return "", err
		}
		othersWrite := dfi.Mode().Perm()&0o022 != 0
		if othersWrite {
			if dfi.Mode()&fs.ModeSticky == 0 || last || fi.Mode()&fs.ModeSymlink != 0 && uid(fi) != 0 {
				return "", rootOnly(done, dfi)
			}
			if uid(fi) != 0 {
				return "", fmt.Errorf("%s is owned by uid %d, not root, in the shared directory %s", next, uid(fi), done)
			}
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if last {
				if err := rootOnly(done, dfi); err != nil {
					return "", err
				}
				if !fi.Mode().IsRegular() {
					return "", fmt.Errorf("%s: not a regular file", next)
				}
				return next, nil
			}
			done = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("%s: too many levels of symbolic links", path)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			done = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	if file {
		return "", fmt.Errorf("%s is a directory", done)
	}
	return done, nil
}

func allEmpty(parts []string) bool {
	for _, p := range parts {
		if p != "" && p != "." {
			return false
		}
	}
	return true
}

func uid(fi fs.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid
	}
	return ^uint32(0)
}

// owner refuses a directory on the way that is not root-owned.
func owner(dir string, fi fs.FileInfo) error {
	if u := uid(fi); u != 0 {
		return fmt.Errorf("directory %s is owned by uid %d, not root: %w", dir, u, ErrUntrusted)
	}
	return nil
}

// rootOnly refuses a directory that is not root-owned or that group or
// others can write.
func rootOnly(dir string, fi fs.FileInfo) error {
	if err := owner(dir, fi); err != nil {
		return err
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("directory %s is group- or world-writable (mode %s): %w", dir, mode(fi), ErrUntrusted)
	}
	return nil
}

func mode(fi fs.FileInfo) string {
	m := uint32(fi.Mode().Perm())
	if fi.Mode()&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return fmt.Sprintf("%04o", m)
}

// CheckWritable reports, without writing, whether WriteFile and ReplaceIf
// would accept path: its directory, or the deepest existing one if it is
// missing (MkdirAll would create the rest), is trusted, and an existing
// file there is a regular one (or a symlink root placed, to a trusted
// place). It returns the file that would be written, resolved.
func CheckWritable(path string) (string, error) {
	path = filepath.Clean(path)
	if !filepath.IsAbs(path) {
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", err
		}
		path = abs
	}
	dir := filepath.Dir(path)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		existing := dir
		for {
			if _, err := os.Lstat(existing); err == nil || filepath.Dir(existing) == existing {
				break
			}
			existing = filepath.Dir(existing)
		}
		if _, err := TrustedDir(existing); err != nil {
			return "", fmt.Errorf("refusing to create %s: %w", dir, err)
		}
		return path, nil
	}
	return trustedTarget(path)
}

// CheckRootOnly is CheckWritable for a file that nobody but root may
// change: where it exists, it must also be root-owned and not group- or
// world-writable (a replacement keeps the old file's owner and mode, so a
// file a user owns would stay theirs). It returns the file resolved.
func CheckRootOnly(path string) (string, error) {
	target, err := CheckWritable(path)
	if err != nil {
		return "", err
	}
	fi, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return target, nil
	}
	if err != nil {
		return "", err
	}
	if u := uid(fi); u != 0 {
		return "", fmt.Errorf("%s is owned by uid %d, not root: %w", target, u, ErrUntrusted)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return "", fmt.Errorf("%s is group- or world-writable (mode %s): %w", target, mode(fi), ErrUntrusted)
	}
	return target, nil
}
