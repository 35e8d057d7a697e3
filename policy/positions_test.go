package policy

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/pelletier/go-toml/v2/unstable"
)

// TestLineIndexAgreesWithShape checks the line index against the parser's
// own Shape (which counts from the start of the input) and a naive count,
// at every offset of random inputs: empty lines, CRLF, a trailing newline
// or none, multi-byte characters.
func TestLineIndexAgreesWithShape(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"\n", "\n", "\r\n", "a", "key = 1", "é", "\t", "[t]", ""}
	for n := range 300 {
		var b bytes.Buffer
		for range r.IntN(40) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		src := b.Bytes()
		var p unstable.Parser
		p.Reset(src)
		lines := newLineIndex(src)
		for off := 0; off <= len(src); off++ {
			sh := p.Shape(unstable.Range{Offset: uint32(off)})
			want := position{line: sh.Start.Line, col: sh.Start.Column}
			naive := position{line: bytes.Count(src[:off], []byte("\n")) + 1, col: off - (bytes.LastIndexByte(src[:off], '\n') + 1) + 1}
			if got := lines.position(off); got != want || got != naive {
				t.Fatalf("input %d %q, offset %d: %+v; Shape says %+v, counting says %+v", n, src, off, got, want, naive)
			}
		}
	}
}

// TestPositionsOfManyHandlers: the positions of a policy with many
// handlers are where the keys are written (the first and the last).
func TestPositionsOfManyHandlers(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	const n = 2000
	for i := range n {
		b.WriteString("[handlers.h" + strconv.Itoa(i) + "]\nruntime_type = \"io.containerd.runc.v2\"\n")
	}
	idx, keys := positions(b.Bytes())
	if len(keys) != 3*n {
		t.Fatalf("%d keys, want %d", len(keys), 3*n)
	}
	last := keys[len(keys)-1]
	if want := (position{line: 2 * n, col: 1}); last.pos != want {
		t.Errorf("last key at %+v, want %+v", last.pos, want)
	}
	if p, _ := idx.find([]string{"handlers", "h" + strconv.Itoa(n-1), "runtime_type"}); p != (position{line: 2 * n, col: 1}) {
		t.Errorf("last runtime_type indexed at %+v", p)
	}
	if p, _ := idx.find([]string{"handlers", "h" + strconv.Itoa(n-1)}); p != (position{line: 2*n - 1, col: 11}) {
		t.Errorf("last handler indexed at %+v", p)
	}
}
