package tomlpatch

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

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
