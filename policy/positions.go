package policy

import (
	"bytes"
	"sort"
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
	lines := newLineIndex(src)
	at := func(r unstable.Range) position { return lines.position(int(r.Offset)) }
	var table []string
	record := func(path []string, n *unstable.Node) {
		k := strings.Join(path, "\x00")
		if _, ok := idx[k]; ok {
			return
		}
		idx[k] = at(n.Raw)
	}
	entry := func(path []string, n *unstable.Node) {
		keys = append(keys, keyEntry{path: append([]string(nil), path...), pos: at(n.Raw)})
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

// lineIndex finds the line and column of a byte offset in one binary
// search. The parser's Shape counts the lines from the start of the file at
// every call, which made positions quadratic in the number of keys.
type lineIndex []int // the offset at which each line starts

func newLineIndex(src []byte) lineIndex {
	starts := lineIndex{0}
	for off := 0; ; {
		i := bytes.IndexByte(src[off:], '\n')
		if i < 0 {
			return starts
		}
		off += i + 1
		starts = append(starts, off)
	}
}

// position is the 1-based line and byte column of off, as the parser's
// Shape gives them.
func (l lineIndex) position(off int) position {
	n := sort.SearchInts(l, off+1) - 1 // the last line starting at or before off
	return position{line: n + 1, col: off - l[n] + 1}
}
