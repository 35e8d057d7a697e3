// Package ctrdconfig knows containerd's config.toml: its versions (1 to 4),
// where the CRI plugin keeps its runtimes in each, and how runtimeclassd's
// handler stanzas are written into it as managed blocks.
//
// A managed block is a run of lines between two marker comments:
//
//	# runtimeclassd:begin handler=kata hash=0123456789ab (managed by runtimeclassd; edits here are overwritten)
//	[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata]
//	  runtime_type = "io.containerd.kata.v2"
//	# runtimeclassd:end handler=kata
//
// Patch finds, replaces, inserts and removes exactly these blocks and leaves
// every other byte of the file alone. It never changes `version`, never
// touches a runtime it does not manage, and is idempotent: patching its own
// output with the same runtimes returns the same bytes. Removing every block
// from a file that nothing else changed gives back the original bytes.
package ctrdconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/runtimeclassd/runtimeclassd/tomlpatch"
)

// RuntimesPath returns the table under which the CRI plugin reads its
// runtimes in a config of the given version.
func RuntimesPath(version int) ([]string, error) {
	switch version {
	case 1:
		return []string{"plugins", "cri", "containerd", "runtimes"}, nil
	case 2:
		return []string{"plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes"}, nil
	case 3, 4:
		return []string{"plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes"}, nil
	}
	return nil, fmt.Errorf("unsupported config version %d (supported: 1 to 4)", version)
}

// Version returns the config version of doc: the value of its top-level
// `version` key, or 1 when there is none.
func Version(doc *tomlpatch.Document) (int, error) {
	for _, s := range doc.Stmts() {
		if s.Kind == tomlpatch.KeyValue && s.Section < 0 && len(s.Path) == 1 && s.Path[0] == "version" {
			raw := strings.TrimSpace(string(doc.Bytes()[s.Start:s.End]))
			_, val, _ := strings.Cut(raw, "=")
			val, _, _ = strings.Cut(val, "#")
			val = strings.TrimSpace(val)
			switch val {
			case "1", "2", "3", "4":
				return int(val[0] - '0'), nil
			}
			return 0, fmt.Errorf("line %d: unsupported config version %s (supported: 1 to 4)", s.Line, val)
		}
	}
	return 1, nil
}

// FileVersion is Version of a config's bytes.
func FileVersion(src []byte) (int, error) {
	doc, err := tomlpatch.Parse(src)
	if err != nil {
		return 0, fmt.Errorf("parsing config: %w", err)
	}
	return Version(doc)
}

// Runtime is one CRI runtime handler as containerd reads it.
type Runtime struct {
	// Name is the handler name, the key under the runtimes table.
	Name string
	// Fields are the runtime's own keys (runtime_type, pod_annotations, ...).
	// Values are strings, bools, integers, floats, or slices of those.
	Fields map[string]any
	// Options is the runtime's options table (BinaryName, ConfigPath, ...).
	Options map[string]any
}

// fieldOrder is the order runtime keys are written in; unknown keys follow,
// sorted.
var fieldOrder = []string{
	"runtime_type", "runtime_path", "pod_annotations", "container_annotations",
	"privileged_without_host_devices", "privileged_without_host_devices_all_devices_allowed",
	"base_runtime_spec", "snapshotter", "sandboxer", "io_type",
}

const (
	markerPrefix = "# runtimeclassd:"
	beginWord    = "begin"
	endWord      = "end"
	markerNote   = "(managed by runtimeclassd; edits here are overwritten)"
)

// Block is a managed block found in a config.
type Block struct {
	Handler string
	// Start and End are the byte span of the block's whole lines, markers
	// included.
	Start, End int
	// Line is the line of the begin marker.
	Line int
	// Hash is the hash the begin marker records; Intact is whether the
	// block's content still matches it.
	Hash   string
	Intact bool
	first  int // statement index of the begin marker
	last   int // statement index of the end marker
}

// MarkerError is a damaged or misplaced managed block.
type MarkerError struct {
	Line int
	Msg  string
}

func (e *MarkerError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Blocks returns the managed blocks of doc in order. It fails if a marker is
// unpaired, nested or malformed, or if key/values follow an end marker
// without a header between (removing the block would move them into
// another table).
func Blocks(doc *tomlpatch.Document) ([]Block, error) {
	stmts := doc.Stmts()
	src := doc.Bytes()
	var out []Block
	open := -1
	var cur Block
	for i, s := range stmts {
		if s.Kind != tomlpatch.Comment {
			continue
		}
		word, handler, hash, ok := parseMarker(s.Text)
		if !ok {
			continue
		}
		switch {
		case word == beginWord && open >= 0:
			return nil, &MarkerError{Line: s.Line, Msg: fmt.Sprintf("runtimeclassd begin marker for %q inside the block for %q that starts at line %d; the end marker is missing", handler, cur.Handler, cur.Line)}
		case word == beginWord:
			open = i
			cur = Block{Handler: handler, Start: s.Start, Line: s.Line, Hash: hash, first: i}
		case word == endWord && open < 0:
			return nil, &MarkerError{Line: s.Line, Msg: fmt.Sprintf("runtimeclassd end marker for %q without a begin marker", handler)}
		case word == endWord && handler != cur.Handler:
			return nil, &MarkerError{Line: s.Line, Msg: fmt.Sprintf("runtimeclassd end marker for %q closes the block for %q that starts at line %d", handler, cur.Handler, cur.Line)}
		default:
			cur.End, cur.last = s.End, i
			inner := src[stmts[cur.first].End:s.Start]
			cur.Intact = hashOf(inner) == cur.Hash
			if next := nextNonComment(stmts, i); next >= 0 && stmts[next].Kind == tomlpatch.KeyValue {
				return nil, &MarkerError{Line: stmts[next].Line, Msg: fmt.Sprintf("key %s follows the runtimeclassd block for %q without a table header; move it above the block's begin marker at line %d", tomlpatch.FormatPath(stmts[next].Path[len(stmts[next].Path)-stmts[next].KeyLen:]), cur.Handler, cur.Line)}
			}
			out = append(out, cur)
			open = -1
		}
	}
	if open >= 0 {
		return nil, &MarkerError{Line: cur.Line, Msg: fmt.Sprintf("runtimeclassd block for %q has no end marker; restore it or delete the block by hand", cur.Handler)}
	}
	return out, nil
}

func nextNonComment(stmts []tomlpatch.Stmt, i int) int {
	for j := i + 1; j < len(stmts); j++ {
		if stmts[j].Kind != tomlpatch.Comment {
			return j
		}
	}
	return -1
}

// parseMarker parses "# runtimeclassd:begin handler=NAME hash=HEX ..." and
// "# runtimeclassd:end handler=NAME".
func parseMarker(text string) (word, handler, hash string, ok bool) {
	rest, found := strings.CutPrefix(text, markerPrefix)
	if !found {
		return "", "", "", false
	}
	fields := strings.Fields(rest)
	if len(fields) < 2 || (fields[0] != beginWord && fields[0] != endWord) {
		return "", "", "", false
	}
	word = fields[0]
	for _, f := range fields[1:] {
		if v, ok := strings.CutPrefix(f, "handler="); ok {
			handler = v
		} else if v, ok := strings.CutPrefix(f, "hash="); ok {
			hash = v
		}
	}
	return word, handler, hash, handler != ""
}

func hashOf(b []byte) string {
	sum := sha256.Sum256([]byte(strings.ReplaceAll(string(b), "\r\n", "\n")))
	return hex.EncodeToString(sum[:6])
}

// Conflict is a runtime that policy wants but the config already defines
// outside any managed block. It is left alone.
type Conflict struct {
	Handler string
	Line    int
	// File is the file that defines it when it is not config.toml (a file
	// config.toml imports).
	File string
	// Overrides, when set, are the imported files that define keys of a
	// runtime runtimeclassd had already written in its drop-in: containerd
	// merges them with runtimeclassd's block.
	Overrides []ForeignDef
	// Default is set when the handler is named like containerd's default
	// runtime and nothing else defines that: it would become the runtime
	// of every pod without a RuntimeClass.
	Default string
}

func (c Conflict) String() string {
	if c.Default != "" {
		return fmt.Sprintf("handler %q is containerd's default runtime (default_runtime_name = %q): a policy handler of that name would run every pod that names no RuntimeClass; name it something else", c.Handler, c.Default)
	}
	if len(c.Overrides) > 0 {
		var files []string
		for _, d := range c.Overrides {
			files = append(files, d.String())
		}
		return fmt.Sprintf("handler %q is overridden by %s, which config.toml also imports: containerd merges those keys with runtimeclassd's block, so the handler would not run as the policy says; the block is kept as it is, and the handler is not offered until no other file defines it", c.Handler, strings.Join(files, "; "))
	}
	if c.File != "" {
		return fmt.Sprintf("handler %q is defined in %s, which config.toml imports, and not managed by runtimeclassd; leaving it alone", c.Handler, c.File)
	}
	return fmt.Sprintf("handler %q is already defined at line %d and not managed by runtimeclassd; leaving it alone", c.Handler, c.Line)
}

// ImportEntry is an imports entry runtimeclassd added to config.toml: the
// path, and the exact text inserted (a whole `imports = [...]` line when
// there was no imports key).
type ImportEntry struct {
	Path      string `json:"path"`
	Inserted  string `json:"inserted"`
	WholeLine bool   `json:"whole_line,omitempty"`
}

// Result is the outcome of Patch.
type Result struct {
	Version int
	Out     []byte
	Changed bool
	// Added, Updated, Removed and Unchanged name managed handlers by what
	// happened to their blocks.
	Added, Updated, Removed, Unchanged []string
	// Repaired names blocks whose content had been edited by someone else
	// and was put back.
	Repaired []string
	// Conflicts are wanted runtimes defined outside managed blocks.
	Conflicts []Conflict
	// Kept names containerd's default runtime when it was written out with
	// them (see Options.DefaultRuntime).
	Kept []string
	// Created is true when the input was empty and a new file was made.
	Created bool
	// ImportAdded is the imports entry added for Options.Import, if one was;
	// ImportRemoved is true when Options.Unimport was removed.
	ImportAdded   *ImportEntry
	ImportRemoved bool
	edits         []tomlpatch.Edit
}

// Diff returns a unified diff from src, the input given to Patch, to Out.
func (r *Result) Diff(src []byte, a, b string) string {
	if !r.Changed {
		return ""
	}
	if r.Created {
		return tomlpatch.Diff(nil, []tomlpatch.Edit{{Text: r.Out}}, "/dev/null", b, 3)
	}
	return tomlpatch.Diff(src, r.edits, a, b, 3)
}

// defaultRuntimeName is the runtime containerd runs pods without a
// RuntimeClass on, as a config's document says: default_runtime_name next
// to the runtimes table parent, or runc.
func defaultRuntimeName(doc *tomlpatch.Document, parent []string) string {
	if name, _ := doc.Get(append(slices.Clone(parent[:len(parent)-1]), "default_runtime_name")...).(string); name != "" {
		return name
	}
	return "runc"
}

// CheckBOM refuses a config that starts with a UTF-8 byte order mark, with
// a message that says so (a TOML parser only says "invalid character").
func CheckBOM(src []byte) error {
	if bytes.HasPrefix(src, []byte("\xef\xbb\xbf")) {
		return errors.New("line 1: the file starts with a UTF-8 byte order mark (bytes EF BB BF): containerd 2.x refuses to read it and runtimeclassd does not edit it; remove the mark (sed -i '1s/^\xEF\xBB\xBF//' FILE)")
	}
	return nil
}

// criPlugins are the IDs under which containerd 1.x and 2.x load the CRI
// plugin and its runtime service: disabling any of them leaves no
// RuntimeClass handler served.
var criPlugins = []string{"cri", "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images"}

// criEnabled refuses a config whose disabled_plugins turns the CRI plugin
// off (as Docker's containerd.io package ships it): a handler written
// there would never be served, and enabling CRI is the operator's
// decision, not a side effect of adding a handler.
func criEnabled(doc *tomlpatch.Document) error {
	a, err := doc.TopLevelStringArray("disabled_plugins")
	if err != nil || a == nil {
		return err
	}
	for _, v := range a.Values {
		if slices.Contains(criPlugins, v) {
			return fmt.Errorf("line %d: disabled_plugins holds %q: containerd's CRI plugin, which serves every RuntimeClass handler, is disabled, so no handler written here would run; runtimeclassd doesn't enable it: remove %q from disabled_plugins if the kubelet is to use this containerd", doc.Stmts()[a.Stmt].Line, v, v)
		}
	}
	return nil
}

// Options tune Patch.
type Options struct {
	// NewFileVersion is the version written when src is empty (a missing
	// file): `version = N` comes first. 0 leaves an empty src as version 1.
	NewFileVersion int
	// DefaultRuntime, if set, returns containerd's default runtime for
	// src. Whenever the file gets managed runtimes and doesn't define the
	// default runtime itself, it is written out as a managed block too:
	// containerd 1.x replaces its built-in runtimes table with the file's,
	// so a file that names only kata loses runc, and with it the CRI
	// plugin. A revert removes it with the rest. It is called only after
	// src parsed, and only if there are runtimes to manage.
	DefaultRuntime func() (*Runtime, error)
	// Foreign are runtimes that other files define (files config.toml
	// imports), by name, with the file: wanted ones are conflicts.
	Foreign map[string]string
	// Import is a file config.toml must import: an imports entry is added
	// unless one already covers it (Result.ImportAdded says what).
	Import string
	// Unimport is an entry runtimeclassd added before, to remove.
	Unimport *ImportEntry
	// Path is config.toml's path, for resolving relative imports.
	Path string
}

// Patch returns src with exactly one managed block per runtime in want (and
// for containerd's default runtime, see Options.DefaultRuntime) and no
// other managed blocks.
func Patch(src []byte, want []Runtime, opts Options) (*Result, error) {
	created := len(src) == 0 && opts.NewFileVersion > 0
	if created {
		src = []byte(fmt.Sprintf("version = %d\n", opts.NewFileVersion))
	}
	if err := CheckBOM(src); err != nil {
		return nil, err
	}
	doc, err := tomlpatch.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("parsing config: %w", err)
	}
	version, err := Version(doc)
	if err != nil {
		return nil, err
	}
	if len(want) > 0 {
		if err := criEnabled(doc); err != nil {
			return nil, err
		}
	}
	parent, _ := RuntimesPath(version)
	blocks, err := Blocks(doc)
	if err != nil {
		return nil, err
	}
	res := &Result{Version: version}
	byName := map[string]*Block{}
	for i := range blocks {
		b := &blocks[i]
		if _, dup := byName[b.Handler]; dup {
			return nil, &MarkerError{Line: b.Line, Msg: fmt.Sprintf("second runtimeclassd block for %q; delete one of them", b.Handler)}
		}
		byName[b.Handler] = b
	}
	blockStmt := make([]bool, len(doc.Stmts()))
	for _, b := range blocks {
		for i := b.first; i <= b.last; i++ {
			blockStmt[i] = true
		}
	}
	inBlock := func(i int) bool { return blockStmt[i] }
	wanted := map[string]bool{}
	for _, r := range want {
		if wanted[r.Name] {
			return nil, fmt.Errorf("runtime %q given twice", r.Name)
		}
		wanted[r.Name] = true
	}
	// containerd's default runtime is "runc" unless the file says otherwise;
	// if the file defines it, there is nothing to keep and no need to ask.
	defName := defaultRuntimeName(doc, parent)
	definesDefault := unmanagedDef(doc, append(slices.Clone(parent), defName), inBlock) > 0
	if len(want) > 0 && opts.DefaultRuntime != nil && !wanted[defName] && !definesDefault {
		k, err := opts.DefaultRuntime()
		if err != nil {
			return nil, err
		}
		if k != nil && !wanted[k.Name] && unmanagedDef(doc, append(slices.Clone(parent), k.Name), inBlock) == 0 {
			want = append(want, *k)
			wanted[k.Name] = true
			res.Kept = append(res.Kept, k.Name)
		}
	}

	var edits []tomlpatch.Edit
	removing := map[int]bool{} // statement indexes inside blocks being removed
	var spans [][2]int         // removed blocks, adjacent ones merged
	for _, b := range blocks {
		if wanted[b.Handler] {
			continue
		}
		res.Removed = append(res.Removed, b.Handler)
		for i := b.first; i <= b.last; i++ {
			removing[i] = true
		}
		if n := len(spans); n > 0 && spans[n-1][1] == b.Start {
			spans[n-1][1] = b.End
		} else {
			spans = append(spans, [2]int{b.Start, b.End})
		}
	}
	for _, sp := range spans {
		edits = append(edits, doc.RemoveBlock(sp[0], sp[1]))
	}
	var pl *tomlpatch.Placement
	var inserts []Runtime
	for _, r := range want {
		path := append(slices.Clone(parent), r.Name)
		if r.Name == defName && !slices.Contains(res.Kept, r.Name) && unmanagedDef(doc, path, inBlock) == 0 {
			res.Conflicts = append(res.Conflicts, Conflict{Handler: r.Name, Default: defName})
			continue
		}
		if line := unmanagedDef(doc, path, inBlock); line > 0 {
			res.Conflicts = append(res.Conflicts, Conflict{Handler: r.Name, Line: line})
			continue
		}
		if f, ok := opts.Foreign[r.Name]; ok {
			res.Conflicts = append(res.Conflicts, Conflict{Handler: r.Name, File: f})
			continue
		}
		if b, ok := byName[r.Name]; ok {
			e := doc.ReplaceBlock(b.Start, b.End, render(doc, r, styleOf(doc, b, parent)))
			if string(doc.Bytes()[b.Start:b.End]) == string(e.Text) {
				res.Unchanged = append(res.Unchanged, r.Name)
				continue
			}
			edits = append(edits, e)
			if b.Intact {
				res.Updated = append(res.Updated, r.Name)
			} else {
				res.Repaired = append(res.Repaired, r.Name)
			}
			continue
		}
		if pl == nil {
			p, err := doc.PlaceSubtable(parent, func(i int) bool { return removing[i] })
			if err != nil {
				return nil, fmt.Errorf("cannot add runtimes: %w", err)
			}
			if p.Prefix == "" {
				p.Prefix = tomlpatch.FormatPath(parent)
			}
			// A block's end marker directly above the next header looks
			// like that header's comment; never insert inside a block.
			for _, b := range blocks {
				if p.At > b.Start && p.At < b.End {
					p.At = b.End
				}
			}
			pl = &p
		}
		inserts = append(inserts, r)
		res.Added = append(res.Added, r.Name)
	}
	if len(inserts) > 0 {
		sort.Slice(inserts, func(i, j int) bool { return inserts[i].Name < inserts[j].Name })
		var all []byte
		for _, r := range inserts {
			all = append(all, render(doc, r, *pl)...)
		}
		edits = append(edits, doc.InsertBlock(pl.At, all))
	}
	// The imports edit goes first: at the same offset as a block insertion
	// (a file with no tables), the top-level key must come before the
	// tables.
	ie, err := importEdits(doc, res, opts)
	if err != nil {
		return nil, err
	}
	edits = append(ie, edits...)
	out, err := tomlpatch.Apply(src, edits)
	if err != nil {
		return nil, err
	}
	res.Out = out
	res.Created = created
	res.Changed = created || len(edits) > 0
	res.edits = edits
	if err := checkOutput(out, parent, want, res.Conflicts); err != nil {
		// Never hand back a broken file. This is a bug if it happens; say
		// so rather than guessing.
		return nil, fmt.Errorf("internal error: %w; the config was not changed", err)
	}
	return res, nil
}

// checkOutput proves the edit did what it should, in linear time: the output
// parses, its markers pair up, and every managed runtime is a table header
// defined only inside its own block. Outside the blocks the bytes are the
// input's, which go-toml fully checked, so this covers everything the edit
// could have broken.
func checkOutput(out []byte, parent []string, want []Runtime, conflicts []Conflict) error {
	doc, err := tomlpatch.ParseSyntax(out)
	if err != nil {
		return fmt.Errorf("patched config does not parse (%w)", err)
	}
	blocks, err := Blocks(doc)
	if err != nil {
		return fmt.Errorf("patched config has bad markers (%w)", err)
	}
	spans := map[string]Block{}
	for _, b := range blocks {
		spans[b.Handler] = b
	}
	skip := map[string]bool{}
	for _, c := range conflicts {
		skip[c.Handler] = true
	}
	for _, r := range want {
		if skip[r.Name] {
			continue
		}
		b, ok := spans[r.Name]
		def := doc.Lookup(append(slices.Clone(parent), r.Name)...)
		if !ok || def.Kind != tomlpatch.Header {
			return fmt.Errorf("runtime %q is not a table of its own in the patched config", r.Name)
		}
		for _, i := range def.Stmts {
			if i < b.first || i > b.last {
				return fmt.Errorf("runtime %q is also defined outside its block, at line %d", r.Name, doc.Stmts()[i].Line)
			}
		}
	}
	return nil
}

// unmanagedDef returns the line of the first statement outside managed
// blocks that defines path or anything under it, or 0.
func unmanagedDef(doc *tomlpatch.Document, path []string, inBlock func(int) bool) int {
	for _, i := range doc.Lookup(path...).Stmts {
		if !inBlock(i) {
			return doc.Stmts()[i].Line
		}
	}
	return 0
}

// styleOf takes the indentation and path spelling of an existing block, so
// that rewriting it keeps the look the file had.
func styleOf(doc *tomlpatch.Document, b *Block, parent []string) tomlpatch.Placement {
	stmts := doc.Stmts()
	pl := tomlpatch.Placement{Indent: stmts[b.first].Indent, Unit: "  ", Prefix: tomlpatch.FormatPath(parent)}
	for i := b.first + 1; i < b.last; i++ {
		s := stmts[i]
		if s.Kind == tomlpatch.Table && len(s.Path) == len(parent)+1 {
			pl.Indent = s.Indent
			pl.Prefix = tomlpatch.RawPrefix(s, len(parent))
			if i+1 < b.last && stmts[i+1].Kind == tomlpatch.KeyValue {
				pl.Unit, _ = strings.CutPrefix(stmts[i+1].Indent, s.Indent)
			}
			break
		}
	}
	return pl
}

// render writes one managed block in the style of pl, with the document's
// line endings.
func render(doc *tomlpatch.Document, r Runtime, pl tomlpatch.Placement) []byte {
	header := pl.Indent + "[" + pl.Prefix + "." + tomlpatch.FormatKey(r.Name) + "]"
	var inner []string
	inner = append(inner, header)
	inner = append(inner, kvLines(r.Fields, fieldOrder, pl.Indent+pl.Unit)...)
	if len(r.Options) > 0 {
		inner = append(inner, pl.Indent+pl.Unit+"["+pl.Prefix+"."+tomlpatch.FormatKey(r.Name)+".options]")
		inner = append(inner, kvLines(r.Options, nil, pl.Indent+pl.Unit+pl.Unit)...)
	}
	body := doc.Lines(inner...)
	begin := fmt.Sprintf("%s%sbegin handler=%s hash=%s %s", pl.Indent, markerPrefix, r.Name, hashOf(body), markerNote)
	end := fmt.Sprintf("%s%send handler=%s", pl.Indent, markerPrefix, r.Name)
	out := doc.Lines(begin)
	out = append(out, body...)
	return append(out, doc.Lines(end)...)
}

func kvLines(m map[string]any, order []string, indent string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	rank := func(k string) int {
		if i := slices.Index(order, k); i >= 0 {
			return i
		}
		return len(order)
	}
	sort.Slice(keys, func(i, j int) bool {
		ri, rj := rank(keys[i]), rank(keys[j])
		if ri != rj {
			return ri < rj
		}
		return keys[i] < keys[j]
	})
	lines := make([]string, 0, len(keys))
	for _, k := range keys {
		lines = append(lines, indent+tomlpatch.FormatKey(k)+" = "+FormatValue(m[k]))
	}
	return lines
}

// FormatValue spells a value as TOML. It supports the types policy files
// decode to: strings, bools, integers, floats, and slices and maps of those.
func FormatValue(v any) string {
	switch x := v.(type) {
	case string:
		return tomlpatch.Quote(x)
	case bool:
		return fmt.Sprint(x)
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(x)
	case float32, float64:
		s := fmt.Sprint(x)
		if !strings.ContainsAny(s, ".eEn") { // keep it a float: 1 -> 1.0
			s += ".0"
		}
		return s
	case []string:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = tomlpatch.Quote(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = FormatValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		lines := kvLines(x, nil, "")
		return "{" + strings.Join(lines, ", ") + "}"
	}
	panic(fmt.Sprintf("ctrdconfig: cannot format %T", v))
}

// importEdits adds an imports entry for opts.Import unless one covers it,
// and removes opts.Unimport if it is still exactly as it was inserted.
func importEdits(doc *tomlpatch.Document, res *Result, opts Options) ([]tomlpatch.Edit, error) {
	var edits []tomlpatch.Edit
	a, err := doc.TopLevelStringArray("imports")
	if err != nil {
		return nil, err
	}
	if u := opts.Unimport; u != nil && a != nil {
		if u.WholeLine {
			s := doc.Stmts()[a.Stmt]
			if string(doc.Bytes()[s.Start:s.End]) == u.Inserted+doc.Newline() || string(doc.Bytes()[s.Start:s.End]) == u.Inserted {
				edits = append(edits, doc.RemoveBlock(s.Start, s.End))
				res.ImportRemoved = true
			}
		} else if e, err := doc.RemoveAppended(a, u.Path, []byte(u.Inserted)); err == nil {
			edits = append(edits, e)
			res.ImportRemoved = true
		}
		if !res.ImportRemoved {
			return nil, fmt.Errorf("the imports entry for %s that runtimeclassd added was changed since; remove it by hand", u.Path)
		}
		return edits, nil
	}
	if opts.Import == "" {
		return nil, nil
	}
	var have []string
	if a != nil {
		have = a.Values
	}
	if ImportsCover(opts.Path, have, opts.Import) {
		return nil, nil
	}
	if a != nil {
		e, text := doc.AppendString(a, opts.Import)
		res.ImportAdded = &ImportEntry{Path: opts.Import, Inserted: string(text)}
		return []tomlpatch.Edit{e}, nil
	}
	line := "imports = [" + tomlpatch.Quote(opts.Import) + "]"
	e, _ := doc.AddTopLevelLine(line)
	res.ImportAdded = &ImportEntry{Path: opts.Import, Inserted: line, WholeLine: true}
	return []tomlpatch.Edit{e}, nil
}
