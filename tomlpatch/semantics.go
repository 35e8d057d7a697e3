package tomlpatch

import (
	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// semantics checks a document's meaning in the same pass as its statements
// are parsed, in time linear in the document. go-toml's decoder, which did
// this before, looks every key up by a linear scan of all the keys seen so
// far, which made a config with thousands of tables quadratic.
//
// It mirrors the decoder's rules (a key or table defined twice, a table
// defined by a header and by dotted keys, a value extended as a table, an
// array of tables redefined, ...), keyed by a map per table, and checks
// every value as the decoder would read it. It only ever vouches for a
// document: when it finds a problem, or meets a value it leaves to
// go-toml, Parse runs go-toml's full decoder instead, which says what is
// wrong and where exactly as before. With build set, it also decodes the
// values as go-toml does (decodeValues); otherwise Get decodes them on
// demand. FuzzParseAgreesWithGoTOML checks that every document it accepts
// is one go-toml accepts, with the same values.
type semantics struct {
	keys     slab[seenKey]
	children map[child[seenKey]]*seenKey
	root     *seenKey
	cur      *seenKey // the table key/values go to
	build    bool
	values   map[string]any // with build: what go-toml decodes
	curMap   map[string]any
}

// seenKind is what a key is, as go-toml's duplicate tracker sees it.
type seenKind uint8

const (
	seenValue  seenKind = iota + 1 // a value, inline tables included: never extended
	seenDotted                     // a table made by dotted keys
	seenTable                      // a table made by a header, its own or a deeper one
	seenArray                      // an array of tables
)

type seenKey struct {
	kind     seenKind
	explicit bool // a table with a header of its own
}

func (s *semantics) child(k *seenKey, name string) *seenKey {
	return s.children[child[seenKey]{k, name}]
}

// add adds a key under k, in place of any key of that name.
func (s *semantics) add(k *seenKey, name string, kind seenKind, explicit bool) *seenKey {
	c := s.keys.new()
	c.kind, c.explicit = kind, explicit
	s.children[child[seenKey]{k, name}] = c
	return c
}

func newSemantics(build bool) *semantics {
	root := &seenKey{kind: seenTable}
	s := &semantics{root: root, cur: root, build: build, children: map[child[seenKey]]*seenKey{}}
	if build {
		s.values = map[string]any{}
		s.curMap = s.values
	}
	return s
}

// decodeValues decodes a document that the one-pass check vouched for, as
// go-toml does.
func decodeValues(src []byte) map[string]any {
	sem := newSemantics(true)
	if _, err := parse(src, nil, sem); err != nil {
		return nil // not reached: the document was vouched for
	}
	return sem.values
}

// intermediate walks the parts of a header before its last, as go-toml
// does: tables of any kind may get sub-tables, values may not.
func (s *semantics) intermediate(parts []string) (*seenKey, bool) {
	k := s.root
	for _, name := range parts {
		c := s.child(k, name)
		switch {
		case c == nil:
			c = s.add(k, name, seenTable, false)
		case c.kind == seenValue:
			return nil, false
		}
		k = c
	}
	return k, true
}

// table is a [header]. It reports false where go-toml would refuse it.
func (s *semantics) table(parts []string) bool {
	parent, ok := s.intermediate(parts[:len(parts)-1])
	if !ok {
		return false
	}
	name := parts[len(parts)-1]
	switch c := s.child(parent, name); {
	case c == nil:
		s.cur = s.add(parent, name, seenTable, true)
	case c.kind == seenTable && !c.explicit:
		c.explicit = true
		s.cur = c
	default: // defined twice, by dotted keys, as an array of tables, or a value
		return false
	}
	if s.build {
		m := s.values
		for _, p := range parts {
			m = childTable(m, p)
		}
		s.curMap = m
	}
	return true
}

// arrayTable is a [[header]]: a new element of the array.
func (s *semantics) arrayTable(parts []string) bool {
	parent, ok := s.intermediate(parts[:len(parts)-1])
	if !ok {
		return false
	}
	name := parts[len(parts)-1]
	switch c := s.child(parent, name); {
	case c == nil:
		s.cur = s.add(parent, name, seenArray, true)
	case c.kind == seenArray:
		// A new element: a key of its own, so that the keys of the
		// element before are not its keys.
		s.cur = s.add(parent, name, seenArray, true)
	default:
		return false
	}
	if s.build {
		m := s.values
		for _, p := range parts[:len(parts)-1] {
			m = childTable(m, p)
		}
		elem := map[string]any{}
		a, _ := m[name].([]any)
		m[name] = append(a, elem)
		s.curMap = elem
	}
	return true
}

// keyValue is a key/value of the current table.
func (s *semantics) keyValue(parts []string, value *unstable.Node) bool {
	return s.setKey(s.cur, s.curMap, parts, value)
}

// setKey defines the (dotted) key parts under k (and with build, m): only
// tables made by dotted keys may be extended by them, and the last part
// must be new.
func (s *semantics) setKey(k *seenKey, m map[string]any, parts []string, value *unstable.Node) bool {
	for _, name := range parts[:len(parts)-1] {
		c := s.child(k, name)
		switch {
		case c == nil:
			c = s.add(k, name, seenDotted, false)
		case c.kind != seenDotted:
			return false
		}
		k = c
		if s.build {
			m = childTable(m, name)
		}
	}
	name := parts[len(parts)-1]
	if s.child(k, name) != nil {
		return false
	}
	v, ok := s.value(s.add(k, name, seenValue, false), value)
	if ok && s.build {
		m[name] = v
	}
	return ok
}

// value checks a value (an inline table's keys are its own, and defined
// once; so are those of every inline table in an array) and, with build,
// decodes it as go-toml does.
func (s *semantics) value(k *seenKey, n *unstable.Node) (any, bool) {
	switch n.Kind {
	case unstable.String:
		if !s.build {
			return nil, true
		}
		return string(n.Data), true
	case unstable.Bool:
		return n.Data[0] == 't', true
	case unstable.Integer:
		// go-toml's value for a decimal that fits; the parser has
		// checked its syntax. Others (hexadecimal, underscores, too
		// large) are go-toml's to read.
		if i, ok := decimal(n.Data); ok {
			return i, true
		}
		return goTOMLScalar(n.Data)
	case unstable.Array:
		var a []any
		if s.build {
			a = []any{}
		}
		it := n.Children()
		for it.Next() {
			e := it.Node()
			if e.Kind == unstable.Comment {
				continue
			}
			ek := k
			if e.Kind == unstable.InlineTable || e.Kind == unstable.Array {
				ek = &seenKey{} // an element's keys are its own
			}
			v, ok := s.value(ek, e)
			if !ok {
				return nil, false
			}
			if s.build {
				a = append(a, v)
			}
		}
		return a, true
	case unstable.InlineTable:
		var m map[string]any
		if s.build {
			m = map[string]any{}
		}
		it := n.Children()
		for it.Next() {
			kv := it.Node()
			if kv.Kind != unstable.KeyValue {
				continue
			}
			parts, _, _ := keyParts(kv.Key())
			if !s.setKey(k, m, parts, kv.Value()) {
				return nil, false
			}
		}
		return m, true
	}
	// Floats, dates and times.
	return goTOMLScalar(n.Data)
}

// decimal reads a plain decimal integer (an optional sign, then digits)
// that fits in an int64, as go-toml reads it.
func decimal(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 { // 18 digits always fit
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// goTOMLScalar decodes one scalar, as written, with go-toml, so that its
// value and its checks are go-toml's own.
func goTOMLScalar(raw []byte) (any, bool) {
	var m map[string]any
	if err := toml.Unmarshal(append([]byte("v = "), raw...), &m); err != nil {
		return nil, false
	}
	v, ok := m["v"]
	return v, ok
}

// childTable is the table name of m, as go-toml's decoder finds it: the
// last element of an array of tables, or a table made on the way.
func childTable(m map[string]any, name string) map[string]any {
	switch v := m[name].(type) {
	case map[string]any:
		return v
	case []any:
		if len(v) > 0 {
			if last, ok := v[len(v)-1].(map[string]any); ok {
				return last
			}
		}
	}
	t := map[string]any{}
	m[name] = t
	return t
}

// getValue is Get without decoding the whole document, where one
// statement holds the answer: a path that is absent or crosses an array of
// tables (nil), or a key/value of its own. ok is false where the document's
// values are needed.
func (d *Document) getValue(path []string) (v any, ok bool) {
	nd, inArray := d.find(path)
	switch {
	case len(path) == 0:
		return nil, false
	case nd == nil || inArray:
		// The index has every path Get can reach; values under an array
		// of tables are not reached (Get does not index arrays).
		return nil, true
	case nd.kind != Value:
		return nil, false
	}
	// A value, written as its own key/value, not under an array of tables:
	// what go-toml holds there is that statement's value.
	s := d.stmts[nd.stmt]
	var p unstable.Parser
	p.Reset(d.src[s.Start:s.End])
	if !p.NextExpression() || p.Expression().Kind != unstable.KeyValue {
		return nil, false
	}
	return newSemantics(true).value(&seenKey{}, p.Expression().Value())
}
