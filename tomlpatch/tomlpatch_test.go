package tomlpatch

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/pelletier/go-toml/v2"
)

func mustParse(t testing.TB, src string) *Document {
	t.Helper()
	d, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

func TestLookupFindsEverySpelling(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		path []string
		kind DefKind
		line int // line of the statement giving the kind
	}{
		{"double-quoted header", "[a.\"b.c\".d]\nx = 1\n", []string{"a", "b.c", "d"}, Header, 1},
		{"single-quoted header", "[a.'b.c'.d]\nx = 1\n", []string{"a", "b.c", "d"}, Header, 1},
		{"spaces around dots", "[ a . \"b\" . d ]\n", []string{"a", "b", "d"}, Header, 1},
		{"implied by a deeper header", "[a.b.c]\n", []string{"a", "b"}, Implicit, -1},
		{"dotted key in parent", "[a]\nb.c.d = 1\n", []string{"a", "b", "c"}, Dotted, 2},
		{"dotted key at top", "x = 0\na.b.c = 1\n", []string{"a", "b"}, Dotted, 2},
		{"inline table", "[a]\nb = { c = { d = 1 } }\n", []string{"a", "b", "c"}, Inline, 2},
		{"inline table itself", "[a]\nb = { c = 1 }\n", []string{"a", "b"}, Inline, 2},
		{"value", "[a]\nb = 1\n", []string{"a", "b"}, Value, 2},
		{"array of tables", "[[a.b]]\nx = 1\n[[a.b]]\nx = 2\n", []string{"a", "b"}, InArray, 1},
		{"under array of tables", "[[a]]\n[a.b]\nx = 1\n", []string{"a", "b"}, InArray, 2},
		{"absent", "[a]\n", []string{"b"}, Absent, -1},
		{"crlf", "[a]\r\nb.c = 1\r\n", []string{"a", "b"}, Dotted, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := mustParse(t, tt.src)
			def := d.Lookup(tt.path...)
			if def.Kind != tt.kind {
				t.Fatalf("Lookup(%q).Kind = %v, want %v", tt.path, def.Kind, tt.kind)
			}
			if tt.line > 0 && d.Stmts()[def.Stmt].Line != tt.line {
				t.Errorf("defined at line %d, want %d", d.Stmts()[def.Stmt].Line, tt.line)
			}
		})
	}
}

func TestStmtSpansCoverWholeLines(t *testing.T) {
	t.Parallel()
	src := "# top\r\nk = \"\"\"\r\nmulti\r\n\"\"\" # trailing\r\n\t[t] # c\r\narr = [\r\n  1, # one\r\n  2,\r\n]\r\nlast = 1"
	d := mustParse(t, src)
	var got []string
	for _, s := range d.Stmts() {
		got = append(got, src[s.Start:s.End])
	}
	want := []string{"# top\r\n", "k = \"\"\"\r\nmulti\r\n\"\"\" # trailing\r\n", "\t[t] # c\r\n", "arr = [\r\n  1, # one\r\n  2,\r\n]\r\n", "last = 1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("spans:\n%q\nwant\n%q", got, want)
	}
	if d.Newline() != "\r\n" || d.Stmts()[2].Indent != "\t" || d.Stmts()[2].Line != 5 {
		t.Fatalf("newline %q indent %q line %d", d.Newline(), d.Stmts()[2].Indent, d.Stmts()[2].Line)
	}
}

func TestParseErrorsHavePositions(t *testing.T) {
	t.Parallel()
	for src, want := range map[string]string{
		"a = 1\nb = \n":        "line 2",
		"[a]\nx = 1\n[a]\n":    "line 3",
		"a = { b = 1 }\n[a.c]": "line 2",
		"a = 'unterminated\n":  "line 1",
	} {
		_, err := Parse([]byte(src))
		var pe *ParseError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want a ParseError at %s", src, err, want)
		}
	}
}

func TestPlaceSubtable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		src    string
		parent []string
		// at is the text that must follow the insertion point ("" = end).
		at             string
		indent, prefix string
	}{
		{"after last sibling subtree, before attached comment",
			"[r]\n[r.a]\nx = 1\n[r.a.o]\ny = 2\n\n# about b\n[b]\n", []string{"r"}, "# about b\n[b]\n", "", "r"},
		{"detached comment stays with the section before",
			"[r.a]\nx = 1\n# x = 2\n\n[b]\n", []string{"r"}, "[b]\n", "", "r"},
		{"sibling style copied",
			"[p]\n  [p.'q'.r.a]\n    x = 1\n[z]\n", []string{"p", "q", "r"}, "[z]\n", "  ", "p.'q'.r"},
		{"own header, no siblings", "[p]\n\t[p.r]\n\t\tdefault = 1\n[z]\n", []string{"p", "r"}, "[z]\n", "\t\t", "p.r"},
		{"dotted parent", "[p]\nr.a.x = 1\n[z]\n", []string{"p", "r"}, "[z]\n", "", ""},
		{"only an ancestor", "[p]\nq = 1\n[z]\n", []string{"p", "r"}, "[z]\n", "", ""},
		{"nothing", "a = 1\n", []string{"p", "r"}, "", "", ""},
		{"top-level dotted only", "p.r.a = 1\n[z]\n", []string{"p", "r"}, "[z]\n", "", ""},
		{"last in file", "[p.r.a]\nx = 1\n# end\n", []string{"p", "r"}, "", "", "p.r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := mustParse(t, tt.src)
			pl, err := d.PlaceSubtable(tt.parent, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rest := tt.src[pl.At:]; rest != tt.at {
				t.Errorf("inserts before %q, want before %q", rest, tt.at)
			}
			if pl.Indent != tt.indent || pl.Prefix != tt.prefix {
				t.Errorf("indent %q prefix %q, want %q %q", pl.Indent, pl.Prefix, tt.indent, tt.prefix)
			}
		})
	}
}

func TestPlaceSubtableRefusesWhatCantBeExtended(t *testing.T) {
	t.Parallel()
	for src, kind := range map[string]DefKind{
		"[p]\nr = { a = { x = 1 } }\n": Inline,
		"p = { r = {} }\n":             Inline,
		"[p]\nr = 5\n":                 Value,
		"[[p.r]]\nx = 1\n":             InArray,
		"[[p]]\n[p.r.a]\n":             InArray,
	} {
		_, err := mustParse(t, src).PlaceSubtable([]string{"p", "r"}, nil)
		var ne *ErrNotExtensible
		if !errors.As(err, &ne) || ne.Def.Kind != kind {
			t.Errorf("%q: err = %v, want not extensible as %v", src, err, kind)
		}
	}
}

func TestBlocksRoundTripAtEndWithoutNewline(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"", "a = 1", "a = 1\n", "a = 1\r\nb = 2", "# only a comment"} {
		d := mustParse(t, src)
		block := d.Lines("[x]", "y = 1")
		ins := d.InsertBlock(len(src), block)
		out, err := Apply([]byte(src), []Edit{ins})
		if err != nil {
			t.Fatal(err)
		}
		d2 := mustParse(t, string(out))
		x := d2.Lookup("x")
		first, last := d2.Stmts()[x.Stmts[0]], d2.Stmts()[x.Stmts[len(x.Stmts)-1]]
		rm := d2.RemoveBlock(first.Start, last.End)
		back, err := Apply(out, []Edit{rm})
		if err != nil {
			t.Fatal(err)
		}
		if string(back) != src {
			t.Errorf("%q: insert then remove gave %q (inserted: %q)", src, back, out)
		}
	}
}

func TestApplyRejectsOverlap(t *testing.T) {
	t.Parallel()
	_, err := Apply([]byte("abcdef"), []Edit{{Start: 1, End: 4}, {Start: 3, End: 5}})
	if err == nil {
		t.Fatal("overlapping edits were applied")
	}
	out, err := Apply([]byte("abcdef"), []Edit{{Start: 4, End: 4, Text: []byte("X")}, {Start: 1, End: 4}})
	if err != nil || string(out) != "aXef" {
		t.Fatalf("Apply = %q, %v", out, err)
	}
}

func TestFormatKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"runc": "runc", "io.containerd.grpc.v1.cri": `"io.containerd.grpc.v1.cri"`,
		"": `""`, "a\"b": `"a\"b"`, "tab\t": `"tab\t"`, "ctl\x01": `"ctl\u0001"`,
	} {
		if got := FormatKey(in); got != want {
			t.Errorf("FormatKey(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestDiffAppliesWithPatch checks Diff against GNU patch: applying the diff
// to the input must give the output.
func TestDiffAppliesWithPatch(t *testing.T) {
	t.Parallel()
	patch, err := exec.LookPath("patch")
	if err != nil {
		if os.Getenv("RUNTIMECLASSD_REQUIRE_REAL") != "" {
			t.Fatal("patch not installed")
		}
		t.Skip("patch not installed")
	}
	src := "a = 1\n[t]\nx = 1\ny = 2\nz = 3\n[u]\nk = 1\nl = 2\nm = 3\nn = 4\no = 5\np = 6\nq = 7\n[v]\nend = 1"
	d := mustParse(t, src)
	st := d.Stmts()
	cases := map[string][]Edit{
		"insert middle":       {d.InsertBlock(st[1].Start, d.Lines("# new"))},
		"insert at eof":       {d.InsertBlock(len(src), d.Lines("[w]", "w = 1"))},
		"remove and replace":  {d.RemoveBlock(st[2].Start, st[4].End), d.ReplaceBlock(st[12].Start, st[12].End, d.Lines("p = 60", "p2 = 61"))},
		"remove last":         {d.RemoveBlock(st[13].Start, st[14].End)},
		"two far apart edits": {d.InsertBlock(0, d.Lines("# head")), d.InsertBlock(st[14].Start, d.Lines("# before end"))},
	}
	for name, edits := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want, err := Apply([]byte(src), edits)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			file := filepath.Join(dir, "f")
			if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			diff := Diff([]byte(src), edits, "a/f", "b/f", 3)
			cmd := exec.Command(patch, "-s", "-p1", "-d", dir)
			cmd.Stdin = strings.NewReader(diff)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("patch: %v\n%s\ndiff:\n%s", err, out, diff)
			}
			got, _ := os.ReadFile(file)
			if !bytes.Equal(got, want) {
				t.Fatalf("patched file:\n%q\nwant\n%q\ndiff:\n%s", got, want, diff)
			}
		})
	}
}

// TestQuoteNeverBreaksALine: a quoted value or key is one line of printable
// characters, whatever it holds (newlines, NUL, DEL, C1 controls,
// bidirectional overrides, line separators, invalid UTF-8), so it can never
// start a new TOML line or a fake `# runtimeclassd:` marker line, nor make
// one read differently on screen; and it reads back as what was quoted.
func TestQuoteNeverBreaksALine(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"plain", "a\nb", "a\r\nb", "\n# runtimeclassd:end handler=x\n[x]", "nul\x00", "del\x7f", "esc\x1b[2J",
		"nel\u0085", "ls\u2028ps\u2029", "rlo\u202egnp.exe", "lri\u2066x\u2069", "lrm\u200e", "bom\ufeff", "alm\u061c",
		"tag\U000E0041", "private\ue000", "quote\"back\\slash", "tab\tx", "ünïcødé 世界", "bad\xffutf8",
	} {
		for _, q := range []string{Quote(s), FormatKey(s)} {
			for _, r := range q {
				if !unicode.IsPrint(r) {
					t.Errorf("Quote(%+q) = %+q: %U is not printable", s, q, r)
				}
			}
			var m map[string]any
			if err := toml.Unmarshal([]byte("k = "+Quote(s)+"\n"+FormatKey(s)+" = 1\n"), &m); err != nil {
				t.Errorf("%+q: %v", s, err)
				continue
			}
			want := strings.ToValidUTF8(s, "\uFFFD")
			if m["k"] != want || m[want] != int64(1) {
				t.Errorf("%+q reads back as %+q, %v", s, m["k"], m)
			}
		}
	}
}
