package tomlpatch

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"unicode"
)

// Edit replaces src[Start:End] with Text.
type Edit struct {
	Start, End int
	Text       []byte
}

// Apply applies edits to src and returns the new bytes. Edits must not
// overlap; an insertion (Start == End) at the end of a replaced span is
// applied after that replacement. src is not modified.
func Apply(src []byte, edits []Edit) ([]byte, error) {
	es := append([]Edit(nil), edits...)
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Start != es[j].Start {
			return es[i].Start < es[j].Start
		}
		return es[i].End < es[j].End
	})
	size := len(src)
	for _, e := range es {
		size += len(e.Text) - (e.End - e.Start)
	}
	out := make([]byte, 0, size)
	at := 0
	for _, e := range es {
		if e.Start < at || e.End < e.Start || e.End > len(src) {
			return nil, fmt.Errorf("overlapping or out-of-range edit [%d,%d)", e.Start, e.End)
		}
		out = append(out, src[at:e.Start]...)
		out = append(out, e.Text...)
		at = e.End
	}
	return append(out, src[at:]...), nil
}

// Lines joins lines with the document's newline, ending the last one too.
func (d *Document) Lines(lines ...string) []byte {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString(d.newline)
	}
	return b.Bytes()
}

// InsertBlock returns the edit that inserts block (whole lines, each ending
// in the document's newline) at offset at, which must be the start of a line
// or the end of the document. At the end of a document whose last line has
// no terminator, the block is put on a line of its own and its own last
// terminator is dropped, so that RemoveBlock gives back the exact input.
func (d *Document) InsertBlock(at int, block []byte) Edit {
	if at == len(d.src) && !d.endsWithNewline() {
		t := append([]byte(d.newline), bytes.TrimSuffix(block, []byte(d.newline))...)
		return Edit{Start: at, End: at, Text: t}
	}
	return Edit{Start: at, End: at, Text: block}
}

// ReplaceBlock returns the edit that replaces the whole lines [start,end)
// with block, keeping whether the document ends with a newline.
func (d *Document) ReplaceBlock(start, end int, block []byte) Edit {
	if end == len(d.src) && !d.endsWithNewline() {
		block = bytes.TrimSuffix(block, []byte(d.newline))
	}
	return Edit{Start: start, End: end, Text: block}
}

// RemoveBlock returns the edit that removes the whole lines [start,end). It
// undoes InsertBlock exactly.
func (d *Document) RemoveBlock(start, end int) Edit {
	if end == len(d.src) && !d.endsWithNewline() && start >= len(d.newline) &&
		string(d.src[start-len(d.newline):start]) == d.newline {
		start -= len(d.newline)
	}
	return Edit{Start: start, End: end}
}

func (d *Document) endsWithNewline() bool {
	return len(d.src) == 0 || d.src[len(d.src)-1] == '\n'
}

// Placement says where a new sub-table block belongs and how to spell it so
// that it looks like its neighbours.
type Placement struct {
	// At is the byte offset to insert at: the start of a line, or the end
	// of the document.
	At int
	// Indent is the indentation of the new table's header line; Unit is one
	// more level of indentation, for its keys.
	Indent, Unit string
	// Prefix is the parent path spelled as in the document when a sibling
	// or the parent itself has a header (for example
	// `plugins."io.containerd.grpc.v1.cri".containerd.runtimes`), or "".
	Prefix string
}

// ErrNotExtensible means a parent path can't take new sub-tables in place.
type ErrNotExtensible struct {
	Path []string
	Def  Def
	Line int
}

func (e *ErrNotExtensible) Error() string {
	return fmt.Sprintf("line %d: %s is defined as %s, which can't be extended in place; rewrite it as [%s] tables",
		e.Line, FormatPath(e.Path), e.Def.Kind, FormatPath(e.Path))
}

// PlaceSubtable finds where a new [parent.<name>] block belongs: after the
// last section of the document that is under parent (next to its existing
// sub-tables), else after the section that defines the nearest existing
// ancestor, else at the end of the document. The point is always before a
// header (or before the comment lines directly attached to it) or at the
// end, so that a block of headers inserted there takes no key/values away
// from the table before it.
//
// skip reports statements to ignore as anchors (for example blocks about to
// be removed). It may be nil.
func (d *Document) PlaceSubtable(parent []string, skip func(i int) bool) (Placement, error) {
	for n := 1; n <= len(parent); n++ {
		def := d.Lookup(parent[:n]...)
		switch def.Kind {
		case Inline, Value, InArray:
			return Placement{}, &ErrNotExtensible{Path: parent[:n], Def: def, Line: d.stmts[def.Stmt].Line}
		}
	}
	pl := Placement{At: len(d.src), Unit: "  "}
	for n := len(parent); n > 0; n-- {
		anchor := -1
		for _, i := range d.Lookup(parent[:n]...).Stmts {
			if skip != nil && skip(i) {
				continue
			}
			anchor = i
		}
		if anchor < 0 {
			continue
		}
		pl.At = d.sectionEnd(anchor)
		if n == len(parent) {
			d.styleFrom(parent, &pl, skip)
		}
		return pl, nil
	}
	return pl, nil
}

// sectionEnd returns the insertion point after the section holding
// statement i: the start of the comment lines directly above the next header,
// or the next header itself, or the end of the document.
func (d *Document) sectionEnd(i int) int {
	next := i + 1
	for next < len(d.stmts) && d.stmts[next].Kind != Table && d.stmts[next].Kind != ArrayTable {
		next++
	}
	if next == len(d.stmts) {
		return len(d.src)
	}
	at := next
	for at-1 > i && d.stmts[at-1].Kind == Comment && d.stmts[at-1].End == d.stmts[at].Start {
		at--
	}
	return d.stmts[at].Start
}

// styleFrom copies indentation and the spelling of the parent path from an
// existing sibling header, or from the parent's own header.
func (d *Document) styleFrom(parent []string, pl *Placement, skip func(int) bool) {
	sibling, own := -1, -1
	for _, i := range d.Lookup(parent...).Stmts {
		s := d.stmts[i]
		if s.Kind != Table || (skip != nil && skip(i)) {
			continue
		}
		switch len(s.Path) {
		case len(parent):
			own = i
		case len(parent) + 1:
			sibling = i
		}
	}
	switch {
	case sibling >= 0:
		s := d.stmts[sibling]
		pl.Indent = s.Indent
		pl.Prefix = RawPrefix(s, len(parent))
		pl.Unit = d.unitAfter(sibling)
	case own >= 0:
		s := d.stmts[own]
		pl.Prefix = s.RawKey
		pl.Unit = d.unitAfter(own)
		pl.Indent = s.Indent + pl.Unit
	}
}

// unitAfter guesses one level of indentation from the first key/value of
// the section that header i opens.
func (d *Document) unitAfter(i int) string {
	h := d.stmts[i]
	for j := i + 1; j < len(d.stmts) && d.stmts[j].Kind != Table && d.stmts[j].Kind != ArrayTable; j++ {
		if kv := d.stmts[j]; kv.Kind == KeyValue {
			if u, ok := strings.CutPrefix(kv.Indent, h.Indent); ok {
				return u
			}
			return ""
		}
	}
	if h.Indent == "" {
		return ""
	}
	if strings.HasPrefix(h.Indent, "\t") {
		return "\t"
	}
	return "  "
}

// RawPrefix returns the first n parts of statement s's key as spelled in
// the source.
func RawPrefix(s Stmt, n int) string {
	return unparsedKey(s.RawKey).prefix(n)
}

type unparsedKey string

// prefix returns the text of the first n dot-separated parts of a raw key,
// honouring quotes and whitespace around dots.
func (k unparsedKey) prefix(n int) string {
	s := string(k)
	parts := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		case '\'':
			for i++; i < len(s) && s[i] != '\''; i++ {
			}
		case '.':
			parts++
			if parts == n {
				return strings.TrimRight(s[:i], " \t")
			}
		}
	}
	return s
}

// FormatPath spells a path as a TOML key, quoting parts that need it.
func FormatPath(path []string) string {
	parts := make([]string, len(path))
	for i, p := range path {
		parts[i] = FormatKey(p)
	}
	return strings.Join(parts, ".")
}

// FormatKey spells one key part: bare when it may be, else a basic string.
func FormatKey(k string) string {
	if k == "" {
		return `""`
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return Quote(k)
		}
	}
	return k
}

// Quote returns s as a TOML basic string on one line. Every character that
// is not printable is escaped: control characters (newlines included),
// format characters such as bidirectional overrides, and line and paragraph
// separators, so that no value can start a new line, in TOML or on screen,
// or make a line read differently than it parses. Invalid UTF-8 bytes,
// which TOML cannot hold, become U+FFFD.
func Quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case unicode.IsPrint(r):
			b.WriteRune(r)
		case r > 0xffff:
			fmt.Fprintf(&b, `\U%08X`, r)
		default:
			fmt.Fprintf(&b, `\u%04X`, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
