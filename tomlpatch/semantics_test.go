package tomlpatch

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// goTOMLParse is Parse as it was before the one-pass check: go-toml's full
// decoder for the semantics and the values, then the statements.
func goTOMLParse(src []byte) (*Document, error) {
	values, err := checkSemantics(src)
	if err != nil {
		return nil, err
	}
	return parse(src, values, nil)
}

// semanticsSeeds are documents at every rule of go-toml's duplicate
// tracker, valid and not, and values the one-pass check leaves to go-toml.
var semanticsSeeds = []string{
	"[a]\n[a]\n",
	"[a]\nb = 1\n[a.b]\n",
	"[a]\nb.c = 1\n[a.b]\n",
	"[a]\nb.c = 1\n[a.b.d]\n",
	"a.b = 1\n[a]\n",
	"a.b = 1\n[a.b]\n",
	"a.b.c = 1\n[a.b.d]\n",
	"[[a]]\n[a]\n",
	"[a]\n[[a]]\n",
	"[[a]]\nb = 1\n[[a]]\nb = 2\n",
	"[[a]]\nb = 1\nb = 2\n",
	"[[a]]\n[a.b]\nc = 1\n[[a]]\n[a.b]\nc = 2\n",
	"[[a]]\n[a.b]\n[a.b]\n",
	"[[a.b]]\n[[a]]\n",
	"[[a]]\n[[a.b]]\nx = 1\n[[a.b]]\nx = 2\n[[a]]\n[[a.b]]\n",
	"a = [1]\n[[a]]\n",
	"a = {b = 1}\n[a.c]\n",
	"a = {b = 1}\n[a]\n",
	"a = {b = 1}\na.c = 2\n",
	"a = {b = 1, b = 2}\n",
	"a = {b.c = 1, b.d = 2}\n",
	"a = {b.c = 1, b = 2}\n",
	"a = {b = {c = 1}, b.d = 2}\n",
	"a = [{b = 1}, {b = 1}]\n",
	"a = [{b = 1, b = 2}]\n",
	"a = [[{b = 1}], [{b = 2, c = [{d = 1}, {d = 2}]}]]\n",
	"a.b.c = 1\na.b.d = 2\n",
	"a.b = 1\na.b.c = 2\n",
	"a = 1\na = 2\n",
	"a = 1\n\"a\" = 2\n",
	"\"a\\u0062\" = 1\nab = 2\n",
	"[a]\n[\"a\"]\n",
	"[a.b.c]\n[a]\n[a.b]\n",
	"[a.b.c]\n[a.b.c]\n",
	"[a.b]\n[a]\nb = 1\n",
	"[a.b]\n[a]\nb.c = 1\n",
	"x = 0x1F\ny = 0o17\nz = 0b101\n",
	"x = 1_000\n",
	"x = +1\ny = -0\nz = +0\n",
	"x = 9223372036854775807\n",
	"x = 9223372036854775808\n",
	"x = -9223372036854775808\n",
	"x = -9223372036854775809\n",
	"x = 0x7FFFFFFFFFFFFFFF\n",
	"x = 0x8000000000000000\n",
	"x = 1.5\ny = -0.0\nz = 1e10\nw = 6.626e-34\n",
	"x = nan\ny = -inf\nz = +inf\n",
	"x = 1979-05-27T07:32:00Z\ny = 1979-05-27T00:32:00.999999-07:00\n",
	"x = 1979-05-27T07:32:00\ny = 1979-05-27\nz = 07:32:00\n",
	"x = 1979-13-27\n",
	"x = 1979-02-30\n",
	"x = 25:00:00\n",
	"x = { a = 1,\n  # c\n  b = 2,\n}\n",
	"a = [1, # one\n  2, # two\n]\n",
	"a = \"\"\"\nx\"\"\"\nb = '''y'''\n",
	"a = [ ]\nb = { }\n",
	"a = true\nb = false\n",
	"",
	"# only a comment",
	"[a] # c\nb = 1 # d\n",
	"a = 1 b = 2\n",
	"[a\n",
	"a = \n",
}

// TestParseAgreesWithGoTOML: Parse, with its one-pass check, accepts
// exactly what go-toml's decoder accepts, with the same values, statements
// and index, and refuses the rest with go-toml's own error.
func TestParseAgreesWithGoTOML(t *testing.T) {
	t.Parallel()
	seeds := semanticsSeeds
	files, _ := filepath.Glob("../ctrdconfig/testdata/configs/*.toml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, string(b))
	}
	for _, src := range seeds {
		agreeWithGoTOML(t, []byte(src))
	}
}

// TestDuplicateTableRefusedWhereItIs: a table defined twice is still
// refused with the line and column of the second definition, in a config
// big enough that the check is the one-pass one.
func TestDuplicateTableRefusedWhereItIs(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&b, "[plugins.\"cri\".registry.mirrors.\"m%d.example.com\"]\n  endpoint = [\"https://m%d.example.com\"]\n", i, i)
	}
	b.WriteString("\n[plugins.\"cri\".registry.mirrors.\"m7.example.com\"]\n")
	_, err := Parse([]byte(b.String()))
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 6002 || pe.Column != 2 {
		t.Fatalf("err = %v, want a ParseError at line 6002, column 2", err)
	}
	if !strings.Contains(pe.Msg, "table m7.example.com already exists") {
		t.Errorf("message %q", pe.Msg)
	}
	agreeWithGoTOML(t, []byte(b.String()))
}

func FuzzParseAgreesWithGoTOML(f *testing.F) {
	for _, s := range semanticsSeeds {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob("../ctrdconfig/testdata/configs/*.toml")
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) > 16<<10 {
			return
		}
		agreeWithGoTOML(t, src)
	})
}

func agreeWithGoTOML(t *testing.T, src []byte) {
	t.Helper()
	want, werr := goTOMLParse(src)
	got, err := Parse(src)
	if fmt.Sprint(err) != fmt.Sprint(werr) {
		t.Fatalf("%q: Parse: %v; go-toml's decoder: %v", src, err, werr)
	}
	if err != nil {
		return
	}
	// And the one pass vouches for every document go-toml accepts: it
	// refuses nothing more, so Parse never needs the slow path to accept.
	if _, err := parse(src, nil, newSemantics(false)); err != nil {
		t.Fatalf("%q: go-toml accepts it, the one-pass check does not: %v", src, err)
	}
	if values := decodeValues(src); !reflect.DeepEqual(withoutNaN(values), withoutNaN(want.values)) {
		t.Fatalf("%q: values\n%#v\ngo-toml's\n%#v", src, values, want.values)
	}
	// Get, which reads single values without decoding the document, gives
	// go-toml's value at every path of the document, and below.
	kids := map[*node][]child[node]{}
	for k, c := range want.children {
		kids[k.parent] = append(kids[k.parent], child[node]{c, k.name})
	}
	var paths [][]string
	var walk func(path []string, nd *node)
	walk = func(path []string, nd *node) {
		paths = append(paths, path, append(slices.Clone(path), "absent"))
		for _, c := range kids[nd] {
			walk(append(slices.Clone(path), c.name), c.parent)
		}
	}
	walk(nil, want.root)
	for _, path := range paths {
		fresh, _ := Parse(src) // Get before any full decoding
		if g, w := withoutNaN(fresh.Get(path...)), withoutNaN(want.Get(path...)); !reflect.DeepEqual(g, w) {
			t.Fatalf("%q: Get(%q) = %#v, go-toml's %#v", src, path, g, w)
		}
	}
	// The same statements, and the same index.
	if !reflect.DeepEqual(got.stmts, want.stmts) || got.newline != want.newline || len(got.children) != len(want.children) {
		t.Fatalf("%q: the documents differ", src)
	}
	for _, path := range paths {
		if g, w := got.Lookup(path...), want.Lookup(path...); !reflect.DeepEqual(g, w) {
			t.Fatalf("%q: Lookup(%q) = %+v, want %+v", src, path, g, w)
		}
	}
}

// withoutNaN replaces NaNs, which equal nothing, with a string.
func withoutNaN(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) {
			return "NaN"
		}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = withoutNaN(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = withoutNaN(e)
		}
		return out
	}
	return v
}
