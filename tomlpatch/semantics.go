package tomlpatch

import (
	"strconv"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// semantics checks a document's meaning in the same pass as its statements
// are parsed, and builds the values Get returns, in time linear in the
// document. go-toml's decoder, which did this before, looks every key up by
// a linear scan of all the keys seen so far, which made a config with
// thousands of tables quadratic.
//
// It mirrors the decoder's rules (a key or table defined twice, a table
// defined by a header and by dotted keys, a value extended as a table, an
// array of tables redefined, ...), keyed by a map per table. It only ever
// vouches for a document: when it finds a problem, or meets a value it
// leaves to go-toml, Parse runs go-toml's full decoder instead, which says
// what is wrong and where exactly as before. FuzzParseAgreesWithGoTOML
// checks that every document it accepts is one go-toml accepts, with the
// same values.
type semantics struct {
	root   *seenKey
	cur    *seenKey       // the table key/values go to
	values map[string]any // what go-toml decodes
	curMap map[string]any
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
	children map[string]*seenKey
}

func (k *seenKey) child(name string) *seenKey { return k.children[name] }

func (k *seenKey) add(name string, kind seenKind, explicit bool) *seenKey {
	c := &seenKey{kind: kind, explicit: explicit}
	if k.children == nil {
		k.children = map[string]*seenKey{}
	}
	k.children[name] = c
	return c
}

func newSemantics() *semantics {
	root := &seenKey{kind: seenTable}
	values := map[string]any{}
	return &semantics{root: root, cur: root, values: values, curMap: values}
}

// intermediate walks the parts of a header before its last, as go-toml
// does: tables of any kind may get sub-tables, values may not.
func (s *semantics) intermediate(parts []string) (*seenKey, bool) {
	k := s.root
	for _, name := range parts {
		c := k.child(name)
		switch {
		case c == nil:
			c = k.add(name, seenTable, false)
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
	switch c := parent.child(name); {
	case c == nil:
		s.cur = parent.add(name, seenTable, true)
	case c.kind == seenTable && !c.explicit:
		c.explicit = true
		s.cur = c
	default: // defined twice, by dotted keys, as an array of tables, or a value
		return false
	}
	m := s.values
	for _, p := range parts {
		m = childTable(m, p)
	}
	s.curMap = m
	return true
}

// arrayTable is a [[header]]: a new element of the array.
func (s *semantics) arrayTable(parts []string) bool {
	parent, ok := s.intermediate(parts[:len(parts)-1])
	if !ok {
		return false
	}
	name := parts[len(parts)-1]
	switch c := parent.child(name); {
	case c == nil:
		s.cur = parent.add(name, seenArray, true)
	case c.kind == seenArray:
		c.children = nil // the new element's keys are new
		s.cur = c
	default:
		return false
	}
	m := s.values
	for _, p := range parts[:len(parts)-1] {
		m = childTable(m, p)
	}
	elem := map[string]any{}
	a, _ := m[name].([]any)
	m[name] = append(a, elem)
	s.curMap = elem
	return true
}

// keyValue is a key/value of the current table.
func (s *semantics) keyValue(parts []string, value *unstable.Node) bool {
	return s.setKey(s.cur, s.curMap, parts, value)
}

// setKey defines the (dotted) key parts under k and m: only tables made by
// dotted keys may be extended by them, and the last part must be new.
func (s *semantics) setKey(k *seenKey, m map[string]any, parts []string, value *unstable.Node) bool {
	for _, name := range parts[:len(parts)-1] {
		c := k.child(name)
		switch {
		case c == nil:
			c = k.add(name, seenDotted, false)
		case c.kind != seenDotted:
			return false
		}
		k = c
		m = childTable(m, name)
	}
	name := parts[len(parts)-1]
	if k.child(name) != nil {
		return false
	}
	v, ok := s.value(k.add(name, seenValue, false), value)
	if !ok {
		return false
	}
	m[name] = v
	return true
}

// value checks a value (an inline table's keys are its own, and defined
// once; so are those of every inline table in an array) and decodes it as
// go-toml does.
func (s *semantics) value(k *seenKey, n *unstable.Node) (any, bool) {
	switch n.Kind {
	case unstable.String:
		return string(n.Data), true
	case unstable.Bool:
		return n.Data[0] == 't', true
	case unstable.Integer:
		// go-toml's value for a decimal that fits; the parser has
		// checked its syntax. Others (hexadecimal, underscores, too
		// large) are go-toml's to read.
		if i, err := strconv.ParseInt(string(n.Data), 10, 64); err == nil {
			return i, true
		}
		return goTOMLScalar(n.Data)
	case unstable.Array:
		a := []any{}
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
			a = append(a, v)
		}
		return a, true
	case unstable.InlineTable:
		m := map[string]any{}
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
