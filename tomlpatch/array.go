package tomlpatch

import (
	"bytes"
	"fmt"

	"github.com/pelletier/go-toml/v2/unstable"
)

// StringArray is a top-level key whose value is an array of strings, as it
// is written: where its brackets and elements are.
type StringArray struct {
	Key string
	// Values are the elements, unquoted.
	Values []string
	// Stmt is the key/value's statement index.
	Stmt int
	// open is the offset of '['; starts and ends bound each element as
	// written (quotes included).
	open         int
	starts, ends []int
}

// TopLevelStringArray finds the key/value key before the first table header
// whose value is an array of strings. It returns nil and no error if there
// is no such key, and an error if the key holds something else.
func (d *Document) TopLevelStringArray(key string) (*StringArray, error) {
	for i, s := range d.stmts {
		if s.Kind != KeyValue || s.Section >= 0 || len(s.Path) != 1 || s.Path[0] != key {
			continue
		}
		if s.Value != unstable.Array {
			return nil, fmt.Errorf("line %d: %s is not an array", s.Line, key)
		}
		return d.stringArray(i)
	}
	return nil, nil
}

func (d *Document) stringArray(i int) (*StringArray, error) {
	s := d.stmts[i]
	a := &StringArray{Key: s.Path[0], Stmt: i, open: -1}
	var p unstable.Parser
	p.Reset(d.src[s.Start:s.End])
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != unstable.KeyValue {
			continue
		}
		c := e.Value().Children()
		for c.Next() {
			n := c.Node()
			if n.Kind != unstable.String {
				return nil, fmt.Errorf("line %d: %s holds something other than strings", s.Line, a.Key)
			}
			a.Values = append(a.Values, string(n.Data))
			a.starts = append(a.starts, s.Start+int(n.Raw.Offset))
			a.ends = append(a.ends, s.Start+int(n.Raw.Offset+n.Raw.Length))
		}
	}
	if err := p.Error(); err != nil {
		return nil, fmt.Errorf("line %d: %w", s.Line, err)
	}
	// '[' is the first one after the key's '=' (a quoted key may hold
	// either).
	afterKey := s.Start + len(s.Indent) + len(s.RawKey)
	eq := bytes.IndexByte(d.src[afterKey:s.End], '=')
	if eq < 0 {
		return nil, fmt.Errorf("line %d: no '=' in %s", s.Line, a.Key)
	}
	if o := bytes.IndexByte(d.src[afterKey+eq:s.End], '['); o >= 0 {
		a.open = afterKey + eq + o
	}
	if a.open < 0 {
		return nil, fmt.Errorf("line %d: no '[' in %s", s.Line, a.Key)
	}
	return a, nil
}

// AppendString returns the edit that adds value at the end of the array,
// as one contiguous insertion: `, "value"` right after the last element, or
// `"value"` right after '[' in an empty array. Every other byte stays,
// comments and layout included; RemoveAppended undoes it exactly.
func (d *Document) AppendString(a *StringArray, value string) (Edit, []byte) {
	if n := len(a.ends); n > 0 {
		text := []byte(", " + Quote(value))
		return Edit{Start: a.ends[n-1], End: a.ends[n-1], Text: text}, text
	}
	text := []byte(Quote(value))
	return Edit{Start: a.open + 1, End: a.open + 1, Text: text}, text
}

// RemoveAppended returns the edit that removes what AppendString inserted
// for value: the last element equal to value, with the separator before it,
// provided they are still exactly the bytes that were inserted (someone may
// have reformatted the array since; then it returns an error and nothing is
// removed).
func (d *Document) RemoveAppended(a *StringArray, value string, inserted []byte) (Edit, error) {
	for i := len(a.Values) - 1; i >= 0; i-- {
		if a.Values[i] != value {
			continue
		}
		start := a.ends[i] - len(inserted)
		if start >= 0 && bytes.Equal(d.src[start:a.ends[i]], inserted) {
			return Edit{Start: start, End: a.ends[i]}, nil
		}
		return Edit{}, fmt.Errorf("line %d: %q in %s is no longer as runtimeclassd wrote it; remove it by hand", d.Line(a.starts[i]), value, a.Key)
	}
	return Edit{}, fmt.Errorf("%s no longer lists %q", a.Key, value)
}

// AddTopLevelLine returns the edit that adds one line (without its
// terminator) among the keys that come before the first table header: after
// the last of them, or at the start of the document if there are none.
// RemoveBlock of the inserted line undoes it.
func (d *Document) AddTopLevelLine(line string) (Edit, int) {
	at := 0
	for _, s := range d.stmts {
		if s.Section >= 0 {
			break
		}
		if s.Kind == KeyValue {
			at = s.End
		}
	}
	e := d.InsertBlock(at, d.Lines(line))
	return e, at
}

// ReplaceString returns the edit that replaces element i with value.
func (d *Document) ReplaceString(a *StringArray, i int, value string) Edit {
	return Edit{Start: a.starts[i], End: a.ends[i], Text: []byte(Quote(value))}
}

// Offset is the byte offset where statement i starts.
func (d *Document) Offset(i int) int { return d.stmts[i].Start }
