package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/runtimeclassd/runtimeclassd/atomicfile"
	"github.com/runtimeclassd/runtimeclassd/policy"
	"github.com/runtimeclassd/runtimeclassd/shimcheck"
)

// HostChecker decides whether the host can run a handler.
type HostChecker interface {
	Check(h shimcheck.Handler) shimcheck.Result
}

// NewHost returns the real host checker for a config.
func NewHost(cfg Config) *shimcheck.Host {
	h := &shimcheck.Host{Root: cfg.HostRoot, ShimPath: filepath.SplitList(cfg.ShimPath)}
	// Whoever writes policies chooses what these directories hold: a
	// handler naming a file in them would run or read the policy
	// author's content (docs/SECURITY.md).
	for _, d := range []string{cfg.PolicyDir, filepath.Dir(cmpOr(cfg.File, "."))} {
		if d == "" || d == "." {
			continue
		}
		if abs, err := filepath.Abs(d); err == nil {
			h.Forbidden = append(h.Forbidden, abs)
		}
	}
	return h
}

func cmpOr(a, b string) string {
	if a == "" {
		return b
	}
	return a
}

// CheckHandlers runs the host checks of every handler of a policy, in the
// policy's order.
func CheckHandlers(c HostChecker, p *policy.Policy) []shimcheck.Result {
	out := make([]shimcheck.Result, len(p.Handlers))
	for i := range p.Handlers {
		h := &p.Handlers[i]
		sh := shimcheck.Handler{Name: h.Name, RuntimeType: h.RuntimeType, RuntimePath: h.RuntimePath, Requires: h.Requires}
		for _, pv := range h.Paths() {
			if pv.Key != "runtime_path" { // checked as the shim
				sh.Paths = append(sh.Paths, shimcheck.Path{Key: pv.Key, Path: pv.Path})
			}
		}
		out[i] = c.Check(sh)
	}
	return out
}

// NFDLabelPrefix is the Node Feature Discovery label of a handler, without
// its name.
const NFDLabelPrefix = "runtimeclassd.io/handler."

// NFDFeatures renders the Node Feature Discovery local feature file: an
// `# +expiry-time` directive (NFD drops the labels after it, so that a dead
// daemon's labels don't outlive it), then one
// `runtimeclassd.io/handler.NAME=true|false` line per policy handler, true
// when the handler is offered.
func NFDFeatures(handlers []string, offered map[string]bool, expires time.Time) []byte {
	var b bytes.Buffer
	b.WriteString("# Written by runtimeclassd: which runtime handlers this node offers.\n")
	fmt.Fprintf(&b, "%s%s\n", expiryPrefix, expires.UTC().Format(time.RFC3339))
	for _, h := range handlers {
		fmt.Fprintf(&b, "%s%s=%t\n", NFDLabelPrefix, h, offered[h])
	}
	return b.Bytes()
}

const expiryPrefix = "# +expiry-time="

// LabelValidity is how long labels stay valid after they are written:
// three resyncs, and at least an hour.
func LabelValidity(resync time.Duration) time.Duration { return max(time.Hour, 3*resync) }

// WriteLabels writes the NFD feature file: a line per policy handler, true
// only where offered says so; none without a policy (after a revert, so the
// labels go away with the handlers). The expiry is validity from now. The
// file is rewritten only when a label changes or less than half of its
// validity is left, so an idle daemon writes it about twice per validity.
// It reports whether the file changed.
func WriteLabels(path string, p *policy.Policy, offered map[string]bool, now time.Time, validity time.Duration) (bool, error) {
	if path == "" {
		return false, nil
	}
	var names []string
	if p != nil {
		for _, h := range p.Handlers {
			names = append(names, h.Name)
		}
	}
	next := NFDFeatures(names, offered, now.Add(validity))
	if old, err := os.ReadFile(path); err == nil {
		if exp, ok := labelsExpiry(old); ok && exp.Sub(now) > validity/2 && bytes.Equal(labelLines(old), labelLines(next)) {
			return false, nil
		}
	}
	return WriteIfChanged(path, next, 0o644)
}

// labelsExpiry reads the expiry directive of a feature file.
func labelsExpiry(b []byte) (time.Time, bool) {
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, expiryPrefix); ok {
			t, err := time.Parse(time.RFC3339, v)
			return t, err == nil
		}
	}
	return time.Time{}, false
}

// labelLines is a feature file without its comments.
func labelLines(b []byte) []byte {
	var out []byte
	for _, l := range bytes.SplitAfter(b, []byte("\n")) {
		if !bytes.HasPrefix(l, []byte("#")) {
			out = append(out, l...)
		}
	}
	return out
}

// WriteIfChanged atomically writes data to path unless it already holds
// exactly that, creating the directory. It reports whether it wrote. It
// never writes through a directory or symlink someone other than root
// controls (see atomicfile): such a path is refused with an error naming
// the directory and why.
func WriteIfChanged(path string, data []byte, perm fs.FileMode) (bool, error) {
	if path == "" {
		return false, nil
	}
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := atomicfile.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	if err := atomicfile.WriteFile(path, data, perm); err != nil {
		return false, err
	}
	return true, nil
}
