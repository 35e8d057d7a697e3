package policy

import (
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

type position struct{ line, col int }

// positionIndex maps dotted key paths of a policy file to where they are
// written, so that errors found after decoding can still say where.
type positionIndex map[string]position

// find returns the position of key, or of its nearest written ancestor.
func (p positionIndex) find(key []string) (position, bool) {
	for n := len(key); n > 0; n-- {
		if pos, ok := p[strings.Join(key[:n], "\x00")]; ok {
			return pos, true
		}
	}
	return position{}, false
}

// keyEntry is a key path as written, and where.
type keyEntry struct {
	path []string
	pos  position
}

// positions indexes where each key path of src is first written, and lists
// every key path as it is written, in order.
func positions(src []byte) (positionIndex, []keyEntry) {
	idx := positionIndex{}
	var keys []keyEntry
	var p unstable.Parser
	p.Reset(src)
	var table []string
	record := func(path []string, n *unstable.Node) {
		k := strings.Join(path, "\x00")
		if _, ok := idx[k]; ok {
			return
		}
		sh := p.Shape(n.Raw)
		idx[k] = position{line: sh.Start.Line, col: sh.Start.Column}
	}
	entry := func(path []string, n *unstable.Node) {
		sh := p.Shape(n.Raw)
		keys = append(keys, keyEntry{path: append([]string(nil), path...), pos: position{line: sh.Start.Line, col: sh.Start.Column}})
	}
	var walk func(prefix []string, kv *unstable.Node)
	walk = func(prefix []string, kv *unstable.Node) {
		path := append([]string(nil), prefix...)
		it := kv.Key()
		for it.Next() {
			path = append(path, string(it.Node().Data))
			record(path, it.Node())
			entry(path, it.Node())
		}
		if v := kv.Value(); v.Kind == unstable.InlineTable {
			c := v.Children()
			for c.Next() {
				if c.Node().Kind == unstable.KeyValue {
					walk(path, c.Node())
				}
			}
		}
	}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = table[:0]
			it := e.Key()
			for it.Next() {
				table = append(table, string(it.Node().Data))
				record(table, it.Node())
				entry(table, it.Node())
			}
		case unstable.KeyValue:
			walk(table, e)
		}
	}
	return idx, keys
}
