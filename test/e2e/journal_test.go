//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestJournalPrioritiesAndDocs: on a node with the installed .deb, the
// daemon's log lines reach the journal with their priority, so that
// `journalctl -p err` shows its errors and only them; and the package
// ships the man pages and the shell completions, which work there.
func TestJournalPrioritiesAndDocs(t *testing.T) {
	t.Parallel()
	n := bootNode(t, "rcd-journal", 1)
	// A policy the daemon refuses: its reconcile ends "invalid", an error.
	n.writeFile("/etc/runtimeclassd/policy.d/10-bad.toml", "[handlers.bad]\nruntime_type = \"io.containerd.runc.v2\"\nbogus_key = 1\n", 0o644)
	n.waitFor("the refused policy in the journal at priority err", 30*time.Second, func() error {
		out, _ := n.sh("journalctl -u runtimeclassd -p err -o cat --no-pager")
		if !strings.Contains(out, "outcome=invalid") || !strings.Contains(out, "unknown key") {
			return errNotYet(out)
		}
		return nil
	})
	errs := n.mustSh("journalctl -u runtimeclassd -p err -o cat --no-pager")
	all := n.mustSh("journalctl -u runtimeclassd -o cat --no-pager")
	if strings.Contains(errs, "level=INFO") || strings.Contains(errs, "level=WARN") || !strings.Contains(all, "level=INFO msg=starting") {
		t.Errorf("journalctl -p err shows other priorities, or the journal lacks the info lines:\n-p err:\n%s\nall:\n%s", errs, all)
	}
	// The priority is journald's field, not text in the line.
	if out := n.mustSh("journalctl -u runtimeclassd -p err -o verbose --no-pager | grep -E '^ +(PRIORITY|MESSAGE)=' | head -4"); !strings.Contains(out, "PRIORITY=3") || strings.Contains(out, "<3>") {
		t.Errorf("journal fields of an error:\n%s", out)
	}
	for _, f := range []string{"/usr/share/man/man8/runtimeclassd.8.gz", "/usr/share/man/man8/runtimeclassd-apply.8.gz",
		"/usr/share/bash-completion/completions/runtimeclassd", "/usr/share/zsh/vendor-completions/_runtimeclassd",
		"/usr/share/fish/vendor_completions.d/runtimeclassd.fish", "/usr/libexec/runtimeclassd/runtimeclassd-daemon"} {
		if _, err := n.sh("test -s " + f); err != nil {
			t.Errorf("the package does not install %s", f)
		}
	}
	out := n.mustSh(`bash -c '. /usr/share/bash-completion/completions/runtimeclassd; COMP_WORDS=(runtimeclassd ap); COMP_CWORD=1; _runtimeclassd; echo "${COMPREPLY[*]}"'`)
	if out != "apply" {
		t.Errorf("bash completion in the node: %q", out)
	}
	if out := n.mustSh("runtimeclassd --help"); !strings.Contains(out, "  --containerd-config FILE") {
		t.Errorf("runtimeclassd --help in the node:\n%s", out)
	}
}

type errNotYet string

func (e errNotYet) Error() string { return "not yet:\n" + string(e) }
