// Package safepath resolves a path one hop at a time, the way the kernel
// does when containerd opens or executes it, and checks every directory in
// which it looks an entry up. A path is trusted only if nobody but root can
// change where it leads: whoever can write to a directory on the way, the
// unresolved path's or any symlink hop's, can swap what lies behind it.
//
// It is shared by policy (policy files) and shimcheck (shims and the files
// handlers name), so that both apply one rule.
package safepath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// maxLinks is the kernel's limit on symlinks followed in one lookup.
const maxLinks = 40

// ErrNotExist is a path, or a hop of it, that does not exist.
var ErrNotExist = errors.New("does not exist")

// RootOwned returns an error unless fi is owned by root and not writable by
// group or others. name is used in the message.
func RootOwned(name string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: cannot read owner", name)
	}
	if st.Uid != 0 {
		return fmt.Errorf("%s is owned by uid %d, not root", name, st.Uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is group- or world-writable (mode %s)", name, Mode(fi))
	}
	return nil
}

// Mode spells fi's permission bits in octal, with the sticky bit.
func Mode(fi fs.FileInfo) string {
	m := uint32(fi.Mode().Perm())
	if fi.Mode()&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return fmt.Sprintf("%04o", m)
}

// Resolve resolves rel, a path relative to the directory start, inside root
// as if root were "/": absolute symlink targets restart from root, and ".."
// never climbs above it. start and the result are host paths (without
// root). Every directory in which an entry is looked up, start included,
// must be a directory owned by root and not writable by group or others;
// the final entry itself is not checked (the caller opens it with
// O_NOFOLLOW and checks what it opened).
func Resolve(root, start, rel string) (string, error) {
	links := 0
	done := filepath.Clean("/" + start)
	checked := map[string]bool{}
	rest := strings.Split(rel, "/")
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
		if !checked[done] {
			if err := checkDir(root, done); err != nil {
				return "", err
			}
			checked[done] = true
		}
		next := filepath.Join(done, part)
		fi, err := os.Lstat(filepath.Join(root, next))
		if errors.Is(err, fs.ErrNotExist) {
			return "", ErrNotExist
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("too many levels of symbolic links")
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			done = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return done, nil
}

// checkDir checks one directory on the way.
func checkDir(root, dir string) error {
	fi, err := os.Lstat(filepath.Join(root, dir))
	if err != nil {
		return fmt.Errorf("directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if err := RootOwned(dir, fi); err != nil {
		return fmt.Errorf("directory %w", err)
	}
	return nil
}
