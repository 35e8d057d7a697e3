package tomlpatch

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

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

// errNotVouched is a document the one-pass check leaves to go-toml.
var errNotVouched = errors.New("not vouched for")

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
