package ctrdconfig

import (
	"bytes"
	"os"
	"path/filepath"

	"testing"

	"github.com/pelletier/go-toml/v2"
	"github.com/runtimeclassd/runtimeclassd/tomlpatch"
)

// FuzzPatch checks the four properties of Patch on arbitrary configs: the
// output parses (and has each handler where the CRI plugin reads it), bytes
// outside managed blocks are kept, a second Patch changes nothing, and
// removing what was inserted gives back the input.
func FuzzPatch(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/configs/*.toml")
	for _, s := range seeds {
		b, _ := os.ReadFile(s)
		f.Add(b, uint8(7))
	}
	f.Add([]byte("version = 3\n[plugins]\n"), uint8(1))
	f.Fuzz(func(t *testing.T, src []byte, pick uint8) {
		if len(src) > 8<<10 || bytes.Contains(src, []byte(markerPrefix)) {
			return
		}
		var want []Runtime
		for i, r := range testRuntimes() {
			if pick&(1<<i) != 0 {
				want = append(want, r)
			}
		}
		res, err := Patch(src, want, Options{})
		if err != nil {
			return // refused: fine, as long as it did not panic
		}
		var v map[string]any
		if err := toml.Unmarshal(res.Out, &v); err != nil {
			t.Fatalf("output does not parse: %v\n%q", err, res.Out)
		}
		path, _ := RuntimesPath(res.Version)
		runtimes, _ := lookupTable(v, path).(map[string]any)
		for _, r := range want {
			if conflicted(res.Conflicts, r.Name) {
				continue
			}
			got, _ := runtimes[r.Name].(map[string]any)
			if got["runtime_type"] != r.Fields["runtime_type"] {
				t.Fatalf("runtime %s reads back as %v from %q", r.Name, got, res.Out)
			}
		}
		// Outside managed blocks, the output is the input.
		doc, err := tomlpatch.Parse(res.Out)
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := Blocks(doc)
		if err != nil {
			t.Fatalf("Blocks on own output: %v", err)
		}
		var outside []byte
		at := 0
		for _, b := range blocks {
			outside = append(outside, res.Out[at:b.Start]...)
			at = b.End
		}
		outside = append(outside, res.Out[at:]...)
		if string(outside) != string(src) && string(outside) != string(src)+doc.Newline() {
			t.Fatalf("bytes outside blocks changed:\n%q\n%q", src, outside)
		}
		// Adding more to a file that already has blocks.
		if len(want) > 0 {
			more, err := Patch(res.Out, testRuntimes(), Options{})
			if err != nil {
				t.Fatalf("adding to own output: %v", err)
			}
			if back, err := Patch(more.Out, nil, Options{}); err != nil || string(back.Out) != string(src) {
				t.Fatalf("revert after adding more: %v", err)
			}
		}
		again, err := Patch(res.Out, want, Options{})
		if err != nil || again.Changed {
			t.Fatalf("second Patch: changed=%v err=%v", again != nil && again.Changed, err)
		}
		back, err := Patch(res.Out, nil, Options{})
		if err != nil || string(back.Out) != string(src) {
			t.Fatalf("revert: %v\n%q\n%+v", err, src, back)
		}
	})
}

func conflicted(cs []Conflict, name string) bool {
	for _, c := range cs {
		if c.Handler == name {
			return true
		}
	}
	return false
}
