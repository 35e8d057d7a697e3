package tomlpatch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"
)

// FuzzPlaceSubtable inserts a new sub-table under an arbitrary parent of an
// arbitrary document, then checks that the result parses, that the new key
// is read back where it was put, that every input byte is still there in
// order, and that removing the block gives back the input exactly.
func FuzzPlaceSubtable(f *testing.F) {
	seeds, _ := filepath.Glob("../ctrdconfig/testdata/configs/*.toml")
	for _, s := range seeds {
		b, _ := os.ReadFile(s)
		f.Add(b, "plugins/io.containerd.grpc.v1.cri/containerd/runtimes")
	}
	f.Add([]byte("[a]\nb.c = 1\n"), "a/b")
	f.Add([]byte("a = 1\r\n[b] # c\r\n\tx = 2"), "b")
	f.Add([]byte("[[a]]\n[a.b]\n"), "a")
	f.Fuzz(func(t *testing.T, src []byte, parentSpec string) {
		parent := strings.Split(parentSpec, "/")
		if len(parent) > 8 || len(src) > 8<<10 {
			return
		}
		for _, p := range parent {
			if strings.ContainsAny(p, "\x00\r\n") || !utf8.ValidString(p) {
				return
			}
		}
		d, err := Parse(src)
		if err != nil {
			return
		}
		const name = "zz-fuzz-new"
		if d.Lookup(append(parent, name)...).Kind != Absent {
			return
		}
		pl, err := d.PlaceSubtable(parent, nil)
		if err != nil {
			return
		}
		if pl.Prefix == "" {
			pl.Prefix = FormatPath(parent)
		}
		header := pl.Indent + "[" + pl.Prefix + "." + name + "]"
		block := d.Lines(header, pl.Indent+pl.Unit+"fuzz_key = \"v\"")
		out, err := Apply(src, []Edit{d.InsertBlock(pl.At, block)})
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := toml.Unmarshal(out, &v); err != nil {
			t.Fatalf("output does not parse: %v\n%q", err, out)
		}
		var cur any = v
		for _, p := range append(parent, name, "fuzz_key") {
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("path %q not a table in output %q", p, out)
			}
			cur = m[p]
		}
		if cur != "v" {
			t.Fatalf("new key reads back as %v in %q", cur, out)
		}
		if !isSubsequence(src, out) {
			t.Fatalf("input bytes lost: %q -> %q", src, out)
		}
		d2, err := Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		def := d2.Lookup(append(parent, name)...)
		first, last := d2.Stmts()[def.Stmts[0]], d2.Stmts()[def.Stmts[len(def.Stmts)-1]]
		back, err := Apply(out, []Edit{d2.RemoveBlock(first.Start, last.End)})
		if err != nil {
			t.Fatal(err)
		}
		if string(back) != string(src) {
			t.Fatalf("remove did not restore the input:\n%q\n%q", src, back)
		}
	})
}

func isSubsequence(a, b []byte) bool {
	i := 0
	for j := 0; i < len(a) && j < len(b); j++ {
		if a[i] == b[j] {
			i++
		}
	}
	return i == len(a)
}
