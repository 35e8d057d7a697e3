package ctrdconfig

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// DiffDumps compares two of containerd's effective configs (`config dump`
// outputs) and returns the dotted keys whose values differ, leaving out the
// runtimes named in ignore, `version`, and `imports` (which names the dumped
// file itself). An empty result means containerd behaves the same with both
// configs but for those runtimes.
func DiffDumps(base, candidate []byte, ignore []string) ([]string, error) {
	a, err := dumpTree(base, ignore)
	if err != nil {
		return nil, err
	}
	b, err := dumpTree(candidate, ignore)
	if err != nil {
		return nil, err
	}
	var diffs []string
	diffTrees(nil, a, b, &diffs)
	sort.Strings(diffs)
	return diffs, nil
}

func dumpTree(dump []byte, ignore []string) (map[string]any, error) {
	var cfg map[string]any
	if err := toml.Unmarshal(dump, &cfg); err != nil {
		return nil, fmt.Errorf("reading containerd's config dump: %w", err)
	}
	version := 1
	if v, ok := cfg["version"].(int64); ok {
		version = int(v)
	}
	delete(cfg, "version")
	delete(cfg, "imports")
	if path, err := RuntimesPath(version); err == nil {
		if rts, ok := lookupTable(cfg, path).(map[string]any); ok {
			for _, n := range ignore {
				delete(rts, n)
			}
		}
	}
	return cfg, nil
}

func diffTrees(path []string, a, b map[string]any, out *[]string) {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	for k := range keys {
		p := append(slices.Clone(path), k)
		ta, aok := a[k].(map[string]any)
		tb, bok := b[k].(map[string]any)
		switch {
		case aok && bok:
			diffTrees(p, ta, tb, out)
		case !reflect.DeepEqual(a[k], b[k]):
			*out = append(*out, fmt.Sprintf("%s: %v -> %v", strings.Join(p, "."), show(a[k]), show(b[k])))
		}
	}
}

func show(v any) string {
	if v == nil {
		return "(unset)"
	}
	return fmt.Sprintf("%v", v)
}
