package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/runtimeclassd/runtimeclassd/atomicfile"
	"github.com/runtimeclassd/runtimeclassd/ctrdconfig"
	"github.com/runtimeclassd/runtimeclassd/policy"
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
	// OutcomeHeld is a reconcile that applied nothing because
	// `runtimeclassd revert` ran and the policy has not changed since.
	OutcomeHeld = "held"
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
	// Hold is set by `runtimeclassd revert`: the daemon applies nothing
	// until the policy changes or `runtimeclassd apply` runs.
	Hold *Hold `json:"hold,omitempty"`
	// AppliedPolicy is the hash of the policy the last successful apply
	// carried out ("" after a revert): a held policy that is this one is
	// already this node's, and its drift is repaired (see fleetGate).
	AppliedPolicy string `json:"applied_policy,omitempty"`
	// Smoke is each managed handler's last sandbox smoke test.
	Smoke map[string]SmokeRecord `json:"smoke,omitempty"`
	// Import is the imports entry runtimeclassd added to config.toml for
	// its drop-in, to take back out when leaving drop-in mode.
	Import *ctrdconfig.ImportEntry `json:"import,omitempty"`
}

// Hold is a revert that the daemon must not undo.
type Hold struct {
	At time.Time `json:"at"`
	// Policy is the policy's hash when revert ran ("" if it could not be
	// read); a different policy lifts the hold.
	Policy string `json:"policy"`
}

func holdOf(st *State) *Hold {
	if st == nil {
		return nil
	}
	return st.Hold
}

// RecordOutcome saves st as the last outcome. The pending record, the bad
// candidates, the last restart and the revert hold are kept from the state
// file, except that a successful revert sets the hold to st.Hold and a
// successful apply lifts it. Nothing is written when only the time would
// change, so an idle daemon's resyncs write nothing.
func RecordOutcome(stateDir string, st *State) error {
	prev, err := LoadState(stateDir)
	if err != nil || prev == nil {
		prev = &State{}
	}
	hold := prev.Hold
	success := st.Outcome == OutcomeApplied || st.Outcome == OutcomeUnchanged
	switch {
	case success && st.Command == "revert":
		hold = st.Hold
	case success && st.Command == "apply":
		hold = nil
	}
	st.Pending, st.BadCandidates, st.LastSuccess, st.LastRestart, st.Hold, st.Smoke, st.Import = prev.Pending, prev.BadCandidates, prev.LastSuccess, prev.LastRestart, hold, prev.Smoke, prev.Import
	if success {
		st.LastSuccess = st.Time
	}
	switch {
	case success && st.Command == "revert":
		st.AppliedPolicy = ""
	case success && st.AppliedPolicy != "":
	default:
		st.AppliedPolicy = prev.AppliedPolicy
	}
	if sameOutcome(prev, st) {
		return nil
	}
	return SaveState(stateDir, st)
}

// sameOutcome reports whether two states differ only in their times.
func sameOutcome(a, b *State) bool {
	if a.LastSuccess.IsZero() != b.LastSuccess.IsZero() {
		return false
	}
	x, y := *a, *b
	x.Time, y.Time, x.LastSuccess, y.LastSuccess = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	ja, err1 := json.Marshal(x)
	jb, err2 := json.Marshal(y)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// HandlerState is one policy handler in the state file.
type HandlerState struct {
	Name    string            `json:"name"`
	Offered bool              `json:"offered"`
	Reason  string            `json:"reason,omitempty"`
	Checks  []shimcheck.Check `json:"checks,omitempty"`
	Smoke   *SmokeRecord      `json:"smoke,omitempty"`
}

// StateDirOK creates the state directory (0700) if it is missing and
// refuses one that someone other than root owns or can write, or that is
// reached through such a directory: whoever can write there could plant a
// state file or a backup, or a symlink that runtimeclassd would write
// through.
func StateDirOK(stateDir string) error {
	if err := atomicfile.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("state directory %s: %w", stateDir, err)
	}
	return nil
}

// StateFile is the state file's path in a state dir.
func StateFile(stateDir string) string { return filepath.Join(stateDir, "state.json") }

// SaveState writes the state file atomically.
func SaveState(stateDir string, s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := StateDirOK(stateDir); err != nil {
		return err
	}
	wrote, err := WriteIfChanged(StateFile(stateDir), append(b, '\n'), 0o600)
	if wrote {
		stateWrites.Add(1)
	}
	return err
}

// stateWrites counts the writes of state files, for the test that keeps
// their number per reconcile in check (issue 20 asks for at most three).
var stateWrites atomic.Int64

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

// StateOf describes a plan's outcome; the handlers' states are filled in
// by handlerStates once it is known what containerd serves.
func StateOf(command string, p *Plan, outcome, backup string, now time.Time) *State {
	s := &State{Time: now.UTC(), Command: command, Outcome: outcome, Backup: backup}
	if p == nil {
		return s
	}
	for _, c := range p.Result.Conflicts {
		s.Conflicts = append(s.Conflicts, c.String())
	}
	return s
}

// handlerStates says, for each policy handler, whether it is offered and
// if not, why: the host checks first, then a conflict, then what offers
// found (not written, not served, smoke test).
func handlerStates(pol *policy.Policy, p *Plan, offers map[string]Offer) []HandlerState {
	if pol == nil {
		return nil
	}
	var out []HandlerState
	for i, h := range pol.Handlers {
		o, known := offers[h.Name]
		hs := HandlerState{Name: h.Name, Offered: o.Offered, Smoke: o.Smoke}
		if p != nil && p.Policy == pol && p.Readiness != nil {
			hs.Checks = p.Readiness[i].Checks
			if !p.Readiness[i].Ready {
				hs.Reason = "not ready: " + p.Readiness[i].Reason()
			}
		}
		if p != nil {
			for _, c := range p.Result.Conflicts {
				if c.Handler == h.Name {
					hs.Reason = c.String()
				}
			}
		}
		if !hs.Offered && hs.Reason == "" {
			hs.Reason = o.Reason
			if !known {
				hs.Reason = "unknown: containerd was not asked"
			}
		}
		out = append(out, hs)
	}
	return out
}

// ManagedBlocks lists the handlers config.toml has managed blocks for, with
// " (edited by hand)" after those whose content no longer matches their
// hash. A missing config has none.
func ManagedBlocks(configPath string) ([]string, error) {
	blocks, err := blocksOf(configPath)
	var out []string
	for _, b := range blocks {
		name := b.Handler
		if !b.Intact {
			name += " (edited by hand)"
		}
		out = append(out, name)
	}
	return out, err
}

// ManagedBlocksIn is ManagedBlocks of every file runtimeclassd writes:
// config.toml and the drop-in.
func ManagedBlocksIn(cfg Config) ([]string, error) {
	var out []string
	for _, f := range cfg.managedFiles() {
		b, err := ManagedBlocks(f)
		if err != nil {
			return out, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, b...)
	}
	return out, nil
}

// managedNames lists the handlers config.toml has managed blocks for.
func managedNames(configPath string) ([]string, error) {
	blocks, err := blocksOf(configPath)
	var out []string
	for _, b := range blocks {
		out = append(out, b.Handler)
	}
	return out, err
}

func blocksOf(configPath string) ([]ctrdconfig.Block, error) {
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
	return ctrdconfig.Blocks(doc)
}
