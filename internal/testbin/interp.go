package testbin

import (
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FakeInterpreters gives a fake host root what the host checks follow
// from a script or an ELF: /bin/sh (a copy of this machine's /bin/true,
// for "#!/bin/sh" scripts) and the program interpreter that /bin/true
// names (a root-owned file of that name), so that fake shims pass.
func FakeInterpreters(t testing.TB, root string) {
	t.Helper()
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"/bin/sh": b}
	if f, err := elf.Open("/bin/true"); err == nil {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				name := make([]byte, p.Filesz)
				p.ReadAt(name, 0)
				files[strings.TrimRight(string(name), "\x00")] = []byte("a fake program interpreter")
			}
		}
		f.Close()
	}
	for p, body := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, body, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}
