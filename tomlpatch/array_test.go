package tomlpatch

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// Appending to an array and taking it out again leaves every other byte
// alone, whatever the array looks like.
func TestAppendStringAndRemove(t *testing.T) {
	t.Parallel()
	const v = "/etc/containerd/conf.d/50-runtimeclassd.toml"
	for name, src := range map[string]string{
		"empty":           "version = 3\nimports = []\n[x]\n",
		"empty, spaced":   "version = 3\nimports = [ ]  # none yet\n",
		"one-line":        "version = 3\nimports = ['/etc/containerd/other.toml']\n[x]\na = 1\n",
		"trailing comma":  "version = 3\nimports = [\"/a.toml\",]\n",
		"multi-line":      "version = 3\nimports = [\n  # the GPU one\n  \"/etc/containerd/gpu.toml\", # keep\n  '/b]#.toml'\n] # end\n[plugins]\n",
		"CRLF":            "version = 3\r\nimports = [\"/a.toml\"]\r\n[x]\r\n",
		"no final EOL":    "version = 3\nimports = [\"/a.toml\"]",
		"quoted key char": "\"imports\" = [\"/a.toml\"]\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			doc, err := Parse([]byte(src))
			if err != nil {
				t.Fatal(err)
			}
			a, err := doc.TopLevelStringArray("imports")
			if err != nil || a == nil {
				t.Fatalf("array: %v %v", a, err)
			}
			e, inserted := doc.AppendString(a, v)
			out, err := Apply([]byte(src), []Edit{e})
			if err != nil {
				t.Fatal(err)
			}
			doc2, err := Parse(out)
			if err != nil {
				t.Fatalf("does not parse after the append: %v\n%s", err, out)
			}
			a2, _ := doc2.TopLevelStringArray("imports")
			if want := append(slices.Clone(a.Values), v); !slices.Equal(a2.Values, want) {
				t.Fatalf("values %q, want %q\n%s", a2.Values, want, out)
			}
			if strings.Count(string(out), "\n") != strings.Count(src, "\n") {
				t.Fatalf("the append added lines:\n%s", out)
			}
			rm, err := doc2.RemoveAppended(a2, v, inserted)
			if err != nil {
				t.Fatal(err)
			}
			back, _ := Apply(out, []Edit{rm})
			if string(back) != src {
				t.Fatalf("remove did not give back the input:\n%q\n%q", back, src)
			}
		})
	}
}

// A missing key is added as one line among the top-level keys, before the
// first table; RemoveBlock of that line gives back the input.
func TestAddTopLevelLine(t *testing.T) {
	t.Parallel()
	for name, src := range map[string]string{
		"after version": "version = 3\nroot = '/var/lib/containerd'\n\n[plugins.x]\na = 1\n",
		"no keys":       "# only tables\n[plugins.x]\n",
		"empty":         "",
		"no final EOL":  "version = 2",
		"CRLF":          "version = 2\r\n[x]\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			doc, _ := Parse([]byte(src))
			e, at := doc.AddTopLevelLine(`imports = ["/x.toml"]`)
			out, err := Apply([]byte(src), []Edit{e})
			if err != nil {
				t.Fatal(err)
			}
			doc2, err := Parse(out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if a, _ := doc2.TopLevelStringArray("imports"); a == nil || !slices.Equal(a.Values, []string{"/x.toml"}) {
				t.Fatalf("imports not top-level:\n%s", out)
			}
			s := doc2.Stmts()[mustIndex(t, doc2, "imports")]
			back, _ := Apply(out, []Edit{doc2.RemoveBlock(s.Start, s.End)})
			if string(back) != src {
				t.Fatalf("remove gave %q, want %q (inserted at %d)", back, src, at)
			}
		})
	}
}

func mustIndex(t *testing.T, d *Document, key string) int {
	t.Helper()
	a, err := d.TopLevelStringArray(key)
	if err != nil || a == nil {
		t.Fatalf("%s: %v", key, err)
	}
	return a.Stmt
}

func TestTopLevelStringArrayRefusesOthers(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"imports = 'x'\n", "imports = [1, 2]\n"} {
		doc, _ := Parse([]byte(src))
		if _, err := doc.TopLevelStringArray("imports"); err == nil {
			t.Errorf("%q: no error", src)
		}
	}
	doc, _ := Parse([]byte("[t]\nimports = ['x']\n"))
	if a, err := doc.TopLevelStringArray("imports"); a != nil || err != nil {
		t.Errorf("a key inside a table was taken for a top-level one: %v %v", a, err)
	}
}

// FuzzAppendString: for any document with a top-level string array, the
// append parses, adds exactly the value, and removing it gives back the
// input.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"imports = []\n", "a = 1\nimports = ['x', \"y\" ,\n# c\n]\n[t]\n", "imports = [\r\n 'x',\r\n]\r\n"} {
		f.Add(s, "/etc/containerd/conf.d/50-runtimeclassd.toml")
	}
	f.Fuzz(func(t *testing.T, src, v string) {
		if !utf8.ValidString(v) {
			return // TOML strings can't hold it; policy values never do
		}
		doc, err := Parse([]byte(src))
		if err != nil {
			return
		}
		a, err := doc.TopLevelStringArray("imports")
		if err != nil || a == nil {
			return
		}
		e, inserted := doc.AppendString(a, v)
		out, err := Apply([]byte(src), []Edit{e})
		if err != nil {
			t.Fatal(err)
		}
		doc2, err := Parse(out)
		if err != nil {
			t.Fatalf("does not parse after the append: %v\n%q", err, out)
		}
		a2, err := doc2.TopLevelStringArray("imports")
		if err != nil || a2 == nil || !slices.Equal(a2.Values, append(slices.Clone(a.Values), v)) {
			t.Fatalf("values %v, want %v plus %q", a2, a.Values, v)
		}
		rm, err := doc2.RemoveAppended(a2, v, inserted)
		if err != nil {
			t.Fatal(err)
		}
		if back, _ := Apply(out, []Edit{rm}); string(back) != src {
			t.Fatalf("remove gave %q, want %q", back, src)
		}
	})
}
