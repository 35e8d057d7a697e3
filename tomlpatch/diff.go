package tomlpatch

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// Diff returns a unified diff (with context lines of context) of applying
// edits to src, labelled with the names a and b. The edits are those given to
// Apply; since they are line splices the diff is exact, with no guessing.
func Diff(src []byte, edits []Edit, a, b string, context int) string {
	if len(edits) == 0 {
		return ""
	}
	es := append([]Edit(nil), edits...)
	sort.SliceStable(es, func(i, j int) bool { return es[i].Start < es[j].Start })

	oldLines := splitLines(src)
	lineStart := make([]int, len(oldLines)+1)
	for i, l := range oldLines {
		lineStart[i+1] = lineStart[i] + len(l)
	}
	lineOf := func(off int) int { // index of the line holding off
		return sort.Search(len(oldLines), func(i int) bool { return lineStart[i+1] > off })
	}

	// Widen each edit to whole lines; edits that share a line form one
	// change, whose old lines [from,to) become repl.
	type change struct {
		from, to int
		edits    []Edit
		repl     []string
	}
	var changes []change
	for _, e := range es {
		from := lineOf(e.Start)
		if from == len(oldLines) && e.Start > 0 && src[e.Start-1] != '\n' {
			from-- // appending to a last line that has no terminator
		}
		to := from
		if e.End > e.Start {
			to = lineOf(e.End-1) + 1
		}
		if to == from && e.Start > lineStart[from] {
			to = from + 1 // an insertion inside a line changes that line
		}
		if n := len(changes); n > 0 && changes[n-1].to > from {
			changes[n-1].to = max(changes[n-1].to, to)
			changes[n-1].edits = append(changes[n-1].edits, e)
			continue
		}
		changes = append(changes, change{from: from, to: to, edits: []Edit{e}})
	}
	for i := range changes {
		c := &changes[i]
		base := lineStart[c.from]
		local := make([]Edit, len(c.edits))
		for k, e := range c.edits {
			local[k] = Edit{Start: e.Start - base, End: e.End - base, Text: e.Text}
		}
		text, err := Apply(src[base:lineStart[c.to]], local)
		if err != nil {
			return fmt.Sprintf("cannot show the diff: %v\n", err)
		}
		c.repl = splitLines(text)
	}

	var out bytes.Buffer
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", a, b)
	for i := 0; i < len(changes); {
		// group changes whose context overlaps into one hunk
		j := i
		for j+1 < len(changes) && changes[j+1].from-changes[j].to <= 2*context {
			j++
		}
		start := max(changes[i].from-context, 0)
		end := min(changes[j].to+context, len(oldLines))
		var body bytes.Buffer
		oldN, newN := 0, 0
		at := start
		for k := i; k <= j; k++ {
			c := changes[k]
			for ; at < c.from; at++ {
				writeLine(&body, ' ', oldLines[at])
				oldN++
				newN++
			}
			for ; at < c.to; at++ {
				writeLine(&body, '-', oldLines[at])
				oldN++
			}
			for _, l := range c.repl {
				writeLine(&body, '+', l)
				newN++
			}
		}
		for ; at < end; at++ {
			writeLine(&body, ' ', oldLines[at])
			oldN++
			newN++
		}
		newStart := start
		for k := 0; k < i; k++ {
			newStart += len(changes[k].repl) - (changes[k].to - changes[k].from)
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", hunkRange(start, oldN), hunkRange(newStart, newN))
		out.Write(body.Bytes())
		i = j + 1
	}
	return out.String()
}

func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if n == 1 {
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func writeLine(b *bytes.Buffer, sign byte, line string) {
	b.WriteByte(sign)
	b.WriteString(line)
	if !strings.HasSuffix(line, "\n") {
		b.WriteString("\n\\ No newline at end of file\n")
	}
}

// splitLines splits b after each '\n', keeping the terminators; a last line
// without one is kept as is.
func splitLines(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = append(out, string(b))
			break
		}
		out = append(out, string(b[:i+1]))
		b = b[i+1:]
	}
	return out
}
