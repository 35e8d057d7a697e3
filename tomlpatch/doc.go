// Package tomlpatch edits TOML documents byte for byte.
//
// It parses a document with go-toml's position-preserving parser into a flat
// list of top-level statements (table headers, key/value pairs and comment
// lines), each with the exact byte span of the lines it occupies. Edits are
// whole-line insertions, replacements and removals; every byte outside an
// edited span is copied through unchanged, so comments, key order,
// indentation, tabs, CRLF line endings, blank lines and quoting survive.
//
// The package knows nothing about containerd. It answers "where and how is
// this table defined" (header, dotted keys, inline table, array of tables, or
// only implied by its sub-tables) and "where does a new sub-table of this
// table belong", and it refuses edits that would change the meaning of the
// bytes around them.
package tomlpatch
