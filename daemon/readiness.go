package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	return &shimcheck.Host{Root: cfg.HostRoot, ShimPath: filepath.SplitList(cfg.ShimPath)}
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

// NFDFeatures renders the Node Feature Discovery local feature file: one
// `runtimeclassd.io/handler.NAME=true|false` line per policy handler, true
// when the handler is offered to containerd, after an `# +expiry-time`
// an hour ahead. The file is rewritten at every reconcile (at least every
// resync_interval), so the labels of a node whose daemon died go within
// the hour instead of outliving it.
func NFDFeatures(handlers []string, offered map[string]bool) []byte {
	const expiry = time.Hour
	var b bytes.Buffer
	b.WriteString("# Written by runtimeclassd: which runtime handlers this node offers.\n")
	fmt.Fprintf(&b, "# +expiry-time=%s\n", time.Now().Add(expiry).UTC().Format(time.RFC3339))
	for _, h := range handlers {
		fmt.Fprintf(&b, "%s%s=%t\n", NFDLabelPrefix, h, offered[h])
	}
	return b.Bytes()
}

// WriteLabels writes the NFD feature file: a line per policy handler, true
// only where offered says so; none without a policy (after a revert, so the
// labels go away with the handlers). It reports whether the file changed.
func WriteLabels(path string, p *policy.Policy, offered map[string]bool) (bool, error) {
	var names []string
	if p != nil {
		for _, h := range p.Handlers {
			names = append(names, h.Name)
		}
	}
	return WriteIfChanged(path, NFDFeatures(names, offered), 0o644)
}

// WriteIfChanged atomically writes data to path unless it already holds
// exactly that, creating the directory. It reports whether it wrote.
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
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	if err := atomicfile.WriteFile(path, data, perm); err != nil {
		return false, err
	}
	return true, nil
}
