package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/runtimeclassd/runtimeclassd/ctrdconfig"
	"github.com/runtimeclassd/runtimeclassd/shimcheck"
	"github.com/runtimeclassd/runtimeclassd/tomlpatch"
)

// Outcomes of a reconcile, as the state file and the metrics name them.
const (
	OutcomeApplied    = "applied"
	OutcomeUnchanged  = "unchanged"
	OutcomeInvalid    = "invalid"
	OutcomeRolledBack = "rolled_back"
	OutcomeError      = "error"
)

// State is what the last reconcile did, kept in the state dir for
// `runtimeclassd status` and for the next start.
type State struct {
	Time    time.Time `json:"time"`
	Command string    `json:"command"`
	Outcome string    `json:"outcome"`
	// Reason is the error, for invalid and error outcomes.
	Reason string `json:"reason,omitempty"`
	// Handlers are the policy's handlers and whether each is offered.
	Handlers []HandlerState `json:"handlers,omitempty"`
	// Conflicts are policy handlers left alone because config.toml defines
	// them outside a managed block.
	Conflicts []string `json:"conflicts,omitempty"`
	// Backup is the backup made by the last write.
	Backup string `json:"backup,omitempty"`
	// LastSuccess is when a reconcile last ended applied or unchanged.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastRestart is when containerd was last restarted by runtimeclassd,
	// by the daemon or by apply: they share one restart budget.
	LastRestart time.Time `json:"last_restart,omitzero"`
	// Pending is a written config not yet verified (see Reconciler.Recover).
	Pending *Pending `json:"pending,omitempty"`
	// BadCandidates are hashes of configs that were rolled back; they are
	// not tried again.
	BadCandidates []string `json:"bad_candidates,omitempty"`
}

// RecordOutcome saves st as the last outcome, keeping the pending apply,
// the bad candidates and the time of the last success from the state file.
func RecordOutcome(stateDir string, st *State) error {
	prev, err := LoadState(stateDir)
	if err != nil || prev == nil {
		prev = &State{}
	}
	st.Pending, st.BadCandidates, st.LastSuccess, st.LastRestart = prev.Pending, prev.BadCandidates, prev.LastSuccess, prev.LastRestart
	if st.Outcome == OutcomeApplied || st.Outcome == OutcomeUnchanged {
		st.LastSuccess = st.Time
	}
	return SaveState(stateDir, st)
}

// HandlerState is one policy handler in the state file.
type HandlerState struct {
	Name    string            `json:"name"`
	Offered bool              `json:"offered"`
	Reason  string            `json:"reason,omitempty"`
	Checks  []shimcheck.Check `json:"checks,omitempty"`
}

// StateFile is the state file's path in a state dir.
func StateFile(stateDir string) string { return filepath.Join(stateDir, "state.json") }

// SaveState writes the state file atomically.
func SaveState(stateDir string, s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	_, err = WriteIfChanged(StateFile(stateDir), append(b, '\n'), 0o600)
	return err
}

// LoadState reads the state file; a missing one gives (nil, nil).
func LoadState(stateDir string) (*State, error) {
	b, err := os.ReadFile(StateFile(stateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", StateFile(stateDir), err)
	}
	return &s, nil
}

// StateOf describes a plan's outcome.
func StateOf(command string, p *Plan, outcome, backup string, now time.Time) *State {
	s := &State{Time: now.UTC(), Command: command, Outcome: outcome, Backup: backup}
	if p == nil {
		return s
	}
	offered := p.OfferedSet()
	for _, c := range p.Result.Conflicts {
		s.Conflicts = append(s.Conflicts, c.String())
	}
	if p.Policy == nil {
		return s
	}
	for i, h := range p.Policy.Handlers {
		hs := HandlerState{Name: h.Name, Offered: offered[h.Name]}
		if p.Readiness != nil {
			hs.Checks = p.Readiness[i].Checks
			if !p.Readiness[i].Ready {
				hs.Reason = "not ready: " + p.Readiness[i].Reason()
			}
		}
		for _, c := range p.Result.Conflicts {
			if c.Handler == h.Name {
				hs.Reason = c.String()
			}
		}
		s.Handlers = append(s.Handlers, hs)
	}
	return s
}

// ManagedBlocks lists the handlers config.toml has managed blocks for, with
// " (edited by hand)" after those whose content no longer matches their
// hash. A missing config has none.
func ManagedBlocks(configPath string) ([]string, error) {
	src, err := os.ReadFile(configPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	doc, err := tomlpatch.Parse(src)
	if err != nil {
		return nil, err
	}
	blocks, err := ctrdconfig.Blocks(doc)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, b := range blocks {
		name := b.Handler
		if !b.Intact {
			name += " (edited by hand)"
		}
		out = append(out, name)
	}
	return out, nil
}
