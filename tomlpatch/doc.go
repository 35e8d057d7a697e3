// Package tomlpatch edits TOML documents byte for byte.
//
// It parses a document with go-toml's position-preserving parser into a flat
// list of top-level statements (table headers, key/value pairs and comment
// lines), each with the exact byte span of the lines it occupies. Edits are
// whole-line insertions, replacements and removals; every byte outside an
// edited span is copied through unchanged, so comments, key order,
// indentation, tabs, CRLF line endings, blank lines and quoting survive.
//
// The package knows nothing about containerd. It answers "where and how is
// this table defined" (header, dotted keys, inline table, array of tables, or
// only implied by its sub-tables) and "where does a new sub-table of this
// table belong", and it refuses edits that would change the meaning of the
// bytes around them.
package tomlpatch

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// StmtKind says what a top-level statement is.
type StmtKind int

// The kinds of top-level statements.
const (
	Comment    StmtKind = iota + 1 // a comment on a line of its own
	Table                          // [a.b]
	ArrayTable                     // [[a.b]]
	KeyValue                       // a.b = value
)

func (k StmtKind) String() string {
	switch k {
	case Comment:
		return "comment"
	case Table:
		return "table header"
	case ArrayTable:
		return "array-of-tables header"
	case KeyValue:
		return "key/value"
	}
	return fmt.Sprintf("StmtKind(%d)", int(k))
}

// Stmt is one top-level statement and the whole lines it occupies.
type Stmt struct {
	Kind StmtKind
	// Start is the offset of the first byte of the statement's first line;
	// End is the offset just past the line terminator of its last line (or
	// the end of the document).
	Start, End int
	// Line is the 1-based line number of the statement's first line.
	Line int
	// Indent is the whitespace before the statement on its first line.
	Indent string
	// Path is the table path for headers, and the table path plus the
	// dotted key for key/values. It is nil for comments.
	Path []string
	// KeyLen is the number of parts in a key/value's own (dotted) key.
	KeyLen int
	// RawKey is the key exactly as spelled in the source, without brackets
	// for headers (for example `plugins.'io.containerd.cri.v1.runtime'.x`).
	RawKey string
	// Text is a comment's text, from '#' to the end of the line, without
	// the line terminator.
	Text string
	// Value is the kind of a key/value's value (for example
	// unstable.InlineTable).
	Value unstable.Kind
	// Section is the index of the header statement that this statement
	// belongs to, or -1 for statements before the first header.
	Section int
}

// DefKind says how a table path is defined in a document.
type DefKind int

// The ways a path can be defined. A path may be touched in more than one
// way (for example a header for a table that also has dotted sub-keys);
// Lookup reports the way that constrains edits the most.
const (
	Absent   DefKind = iota // nothing in the document mentions it
	Implicit                // only implied by a deeper header, [a.b.c] implies a.b
	Header                  // defined by its own [header]
	Dotted                  // defined through dotted keys, a.b.c = 1 defines a.b
	Inline                  // defined inside an inline table value
	Value                   // a non-table value
	InArray                 // at or under an array of tables
)

func (k DefKind) String() string {
	return [...]string{"absent", "implicit", "header", "dotted keys", "inline table", "value", "array of tables"}[k]
}

// Def is what Lookup knows about a path.
type Def struct {
	Kind DefKind
	// Stmt is the index of the statement that gives Kind, or -1.
	Stmt int
	// Stmts are the indexes of every statement at or under the path, in
	// document order.
	Stmts []int
}

// Document is a parsed TOML document. It is immutable: edits produce new
// bytes, which are parsed again.
type Document struct {
	src      []byte
	stmts    []Stmt
	newline  string
	root     *node
	children map[child[node]]*node
	nodes    slab[node]
	// values are what Get reads: go-toml's decoding, or, for a document
	// the one-pass check vouched for (lazy), decoded when first needed.
	values     map[string]any
	lazy       bool
	valuesOnce sync.Once
}

// node is a path in the document's tree of tables and keys.
type node struct {
	kind  DefKind
	stmt  int
	stmts []int
}

// ParseError is a syntax or semantic error with its position.
type ParseError struct {
	Line, Column int
	Msg          string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// Parse parses src. It fails on anything that is not valid TOML, including
// semantic errors such as a key defined twice, with the line and column.
func Parse(src []byte) (*Document, error) {
	// One pass, in linear time, for a document it can vouch for (see
	// semantics); anything else gets go-toml's full decoder, which says
	// what is wrong and where.
	if d, err := parse(src, nil, newSemantics(false)); err == nil {
		return d, nil
	}
	values, err := checkSemantics(src)
	if err != nil {
		return nil, err
	}
	return parse(src, values, nil)
}

// ParseSyntax parses src like Parse but checks only its syntax, in linear
// time, and Get returns nil. It is for bytes made from a document that Parse
// accepted, whose semantics the caller checks itself.
func ParseSyntax(src []byte) (*Document, error) {
	return parse(src, nil, nil)
}

// errNotVouched is a document the one-pass check leaves to go-toml.
var errNotVouched = errors.New("not vouched for")

// parse parses src into statements. With sem, it checks the document's
// semantics on the way (see semantics), and Get decodes values on demand.
func parse(src []byte, values map[string]any, sem *semantics) (*Document, error) {
	d := &Document{src: src, values: values, newline: detectNewline(src), root: &node{stmt: -1}, lazy: sem != nil}
	// Allocations are most of the cost of a parse, and of a short
	// process's page faults: statements are allocated once, for as many
	// lines as there are; their strings are parts of one copy of src, and
	// their paths parts of a few larger slices.
	lines := bytes.Count(src, []byte{'\n'}) + 1
	d.stmts = make([]Stmt, 0, lines)
	d.children = make(map[child[node]]*node, lines)
	if sem != nil {
		sem.children = make(map[child[seenKey]]*seenKey, lines)
	}
	k := keyReader{src: src, text: string(src)}
	var p unstable.Parser
	p.KeepComments = true
	p.Reset(src)
	section := -1
	var table []string
	line, lineAt := 1, 0 // line number of offset lineAt
	for p.NextExpression() {
		e := p.Expression()
		var s Stmt
		var first, last int // byte offsets of the statement's own text
		switch e.Kind {
		case unstable.Comment:
			s.Kind = Comment
			first = int(e.Raw.Offset)
			last = first + int(e.Raw.Length)
			s.Text = k.text[first:last]
		case unstable.Table, unstable.ArrayTable:
			s.Kind = Table
			if e.Kind == unstable.ArrayTable {
				s.Kind = ArrayTable
			}
			keys, kfirst, klast := k.parts(e.Key(), nil)
			s.Path = keys
			first = bytes.LastIndexByte(src[:kfirst], '[')
			if s.Kind == ArrayTable {
				first--
			}
			last = klast
			s.RawKey = k.text[kfirst:klast]
			table = keys
			if sem != nil && !(s.Kind == Table && sem.table(keys) || s.Kind == ArrayTable && sem.arrayTable(keys)) {
				return nil, errNotVouched
			}
		case unstable.KeyValue:
			s.Kind = KeyValue
			path, kfirst, klast := k.parts(e.Key(), table)
			s.Path = path
			s.KeyLen = len(path) - len(table)
			s.RawKey = k.text[kfirst:klast]
			s.Value = e.Value().Kind
			if sem != nil && !sem.keyValue(path[len(table):], e.Value()) {
				return nil, errNotVouched
			}
			first = int(e.Raw.Offset)
			last = first + int(e.Raw.Length)
		default:
			return nil, fmt.Errorf("unexpected top-level %s", e.Kind)
		}
		s.Start = bytes.LastIndexByte(src[:first], '\n') + 1
		s.Indent = k.text[s.Start:first]
		if nl := bytes.IndexByte(src[last:], '\n'); nl >= 0 {
			s.End = last + nl + 1
		} else {
			s.End = len(src)
		}
		line += bytes.Count(src[lineAt:s.Start], []byte{'\n'})
		lineAt = s.Start
		s.Line = line
		if s.Kind == Table || s.Kind == ArrayTable {
			section = len(d.stmts)
		}
		s.Section = section
		d.stmts = append(d.stmts, s)
		d.indexStmt(len(d.stmts)-1, e)
	}
	if err := p.Error(); err != nil {
		return nil, positioned(&p, err)
	}
	return d, nil
}

// keyReader reads the parts of keys as strings that share the memory of
// one copy of the document, and puts paths in slices carved from larger
// ones.
type keyReader struct {
	src  []byte
	text string // string(src)
	slab []string
}

// parts returns prefix followed by the parts of a key, and the byte span
// of the key as written.
func (k *keyReader) parts(it unstable.Iterator, prefix []string) (path []string, first, last int) {
	n := len(prefix)
	for c := it; c.Next(); {
		n++
	}
	if cap(k.slab)-len(k.slab) < n {
		k.slab = make([]string, 0, max(n, 256))
	}
	path = append(k.slab[len(k.slab):len(k.slab):len(k.slab)+n], prefix...)
	k.slab = k.slab[:len(k.slab)+n]
	first = -1
	for it.Next() {
		nd := it.Node()
		path = append(path, k.string(nd))
		if first < 0 {
			first = int(nd.Raw.Offset)
		}
		last = int(nd.Raw.Offset + nd.Raw.Length)
	}
	return path, first, last
}

// string is a key part's name: a part of text when it is written as it
// reads (bare, or quoted without escapes).
func (k *keyReader) string(nd *unstable.Node) string {
	off, end := int(nd.Raw.Offset), int(nd.Raw.Offset+nd.Raw.Length)
	if end <= len(k.src) {
		if raw := k.src[off:end]; bytes.Equal(raw, nd.Data) {
			return k.text[off:end]
		} else if len(raw) >= 2 && (raw[0] == '"' || raw[0] == '\'') && bytes.Equal(raw[1:len(raw)-1], nd.Data) {
			return k.text[off+1 : end-1]
		}
	}
	return string(nd.Data)
}

// Check reports whether src is valid TOML, syntax and semantics, with the
// line and column of the first problem. It is cheaper than Parse.
func Check(src []byte) error {
	_, err := checkSemantics(src)
	return err
}

// checkSemantics runs go-toml's full decoder, which rejects what the
// streaming parser lets through (duplicate keys, a table defined twice,
// extending an inline table).
func checkSemantics(src []byte) (map[string]any, error) {
	var v map[string]any
	err := toml.Unmarshal(src, &v)
	if err == nil {
		return v, nil
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		return nil, &ParseError{Line: row, Column: col, Msg: de.Error()}
	}
	return nil, err
}

func positioned(p *unstable.Parser, err error) error {
	var pe *unstable.ParserError
	if errors.As(err, &pe) && pe.Highlight != nil {
		sh := p.Shape(p.Range(pe.Highlight))
		return &ParseError{Line: sh.Start.Line, Column: sh.Start.Column, Msg: pe.Message}
	}
	return err
}

func keyParts(it unstable.Iterator) (parts []string, first, last int) {
	first = -1
	for it.Next() {
		n := it.Node()
		parts = append(parts, string(n.Data))
		if first < 0 {
			first = int(n.Raw.Offset)
		}
		last = int(n.Raw.Offset + n.Raw.Length)
	}
	return parts, first, last
}

func detectNewline(src []byte) string {
	if i := bytes.IndexByte(src, '\n'); i > 0 && src[i-1] == '\r' {
		return "\r\n"
	}
	return "\n"
}

// mark walks path from the root, creating nodes, and records that statement
// i touches every node on the way. The last node gets kind last; the ones
// before it get Dotted from depth dottedFrom on (the parts of a dotted key)
// and Implicit before that. It returns the last node.
func (d *Document) mark(from *node, path []string, dottedFrom int, last DefKind, i int) *node {
	nd := from
	for n, part := range path {
		key := child[node]{nd, part}
		c := d.children[key]
		if c == nil {
			c = d.nodes.new()
			c.kind, c.stmt = Implicit, -1
			d.children[key] = c
		}
		nd = c
		if m := len(nd.stmts); m == 0 || nd.stmts[m-1] != i {
			nd.stmts = append(nd.stmts, i)
		}
		want := Implicit
		switch {
		case n == len(path)-1:
			want = last
		case n >= dottedFrom:
			want = Dotted
		}
		if want > nd.kind {
			nd.kind, nd.stmt = want, i
		}
	}
	return nd
}

func (d *Document) indexStmt(i int, e *unstable.Node) {
	s := &d.stmts[i]
	switch s.Kind {
	case Table:
		kind := Header
		if d.underArray(s.Path) {
			kind = InArray
		}
		d.mark(d.root, s.Path, len(s.Path), kind, i)
	case ArrayTable:
		d.mark(d.root, s.Path, len(s.Path), InArray, i)
	case KeyValue:
		kind := Value
		if s.Value == unstable.InlineTable {
			kind = Inline
		}
		if s.Section >= 0 && d.stmts[s.Section].Kind == ArrayTable || d.underArray(s.Path) {
			kind = InArray
		}
		nd := d.mark(d.root, s.Path, len(s.Path)-s.KeyLen, kind, i)
		if s.Value == unstable.InlineTable {
			d.markInline(nd, e.Value(), i)
		}
	}
}

// markInline marks the keys of an inline table under its node; a nested
// inline table costs one step per level, however deep.
func (d *Document) markInline(at *node, tbl *unstable.Node, i int) {
	it := tbl.Children()
	for it.Next() {
		kv := it.Node()
		if kv.Kind != unstable.KeyValue {
			continue
		}
		keys, _, _ := keyParts(kv.Key())
		nd := d.mark(at, keys, 0, Inline, i)
		if kv.Value().Kind == unstable.InlineTable {
			d.markInline(nd, kv.Value(), i)
		}
	}
}

// find returns the node at path, and whether a proper ancestor of it is an
// array of tables.
func (d *Document) find(path []string) (nd *node, inArray bool) {
	nd = d.root
	for n, part := range path {
		if n > 0 && nd.kind == InArray {
			inArray = true
		}
		if nd = d.children[child[node]{nd, part}]; nd == nil {
			return nil, inArray
		}
	}
	return nd, inArray
}

func (d *Document) underArray(path []string) bool {
	if len(path) < 2 {
		return false
	}
	nd, in := d.find(path[:len(path)-1])
	return in || nd != nil && nd.kind == InArray
}

// Bytes returns the document's source. The caller must not modify it.
func (d *Document) Bytes() []byte { return d.src }

// Stmts returns the document's top-level statements in order. The caller
// must not modify them.
func (d *Document) Stmts() []Stmt { return d.stmts }

// Newline returns the document's line terminator: "\r\n" if its first line
// ends with one, otherwise "\n".
func (d *Document) Newline() string { return d.newline }

// Lookup reports how path is defined.
func (d *Document) Lookup(path ...string) Def {
	nd, inArray := d.find(path)
	if nd == nil || len(path) == 0 {
		return Def{Kind: Absent, Stmt: -1}
	}
	if inArray {
		return Def{Kind: InArray, Stmt: nd.stmt, Stmts: nd.stmts}
	}
	return Def{Kind: nd.kind, Stmt: nd.stmt, Stmts: nd.stmts}
}

// Get returns the decoded value at path (a string, int64, float64, bool,
// time, []any or map[string]any), or nil.
func (d *Document) Get(path ...string) any {
	if d.lazy {
		if v, ok := d.getValue(path); ok {
			return v
		}
		d.valuesOnce.Do(func() { d.values = decodeValues(d.src) })
	}
	var cur any = d.values
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

// Line returns the 1-based line number of byte offset off.
func (d *Document) Line(off int) int {
	return bytes.Count(d.src[:off], []byte{'\n'}) + 1
}
