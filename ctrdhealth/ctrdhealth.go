// Package ctrdhealth verifies, through containerd's own API, that containerd
// came back after a restart with the CRI runtime handlers it should serve.
//
// Verify polls until a deadline: containerd answers on its socket; no CRI
// plugin reports an init error (introspection); the CRI runtime says
// RuntimeReady; and every expected handler is served. On containerd 2.x the
// handlers come from the CRI Status response; on 1.x, from the verbose
// status's config. A CRI plugin that failed to initialise fails at once, and
// so does a ready CRI that lacks a handler: containerd reads both once, at
// start, so waiting longer cannot help.
//
// It depends on containerd's API module and k8s.io/cri-api only, not on the
// full containerd client.
package ctrdhealth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	introspection "github.com/containerd/containerd/api/services/introspection/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Checker verifies a containerd.
type Checker struct {
	// Address is containerd's gRPC socket.
	Address string
	// Poll is the pause between attempts; 0 means 100 ms.
	Poll time.Duration
}

// ErrCRIFailed is a CRI plugin that failed to initialise.
var ErrCRIFailed = errors.New("CRI plugin failed to load")

// ErrHandlersMissing is a CRI that is up and ready without some of the
// expected handlers. CRI reads its runtimes once, when it loads, so waiting
// longer cannot help.
var ErrHandlersMissing = errors.New("CRI does not serve the handlers")

// Status is what one attempt saw.
type Status struct {
	Serving  bool
	CRIReady bool
	// Handlers are the runtime handlers CRI serves, sorted.
	Handlers []string
}

// Verify waits until containerd serves every handler in want, or ctx ends.
// The returned error says what was last missing.
func (c *Checker) Verify(ctx context.Context, want []string) error {
	poll := c.Poll
	if poll == 0 {
		poll = 100 * time.Millisecond
	}
	var last error
	for {
		st, err := c.Probe(ctx)
		if errors.Is(err, ErrCRIFailed) {
			return err
		}
		if err == nil {
			missing := subtract(want, st.Handlers)
			if len(missing) == 0 {
				return nil
			}
			return fmt.Errorf("%w %s (it serves %s)", ErrHandlersMissing, strings.Join(missing, ", "), strings.Join(st.Handlers, ", "))
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("containerd not healthy: %w", last)
		case <-time.After(poll):
		}
	}
}

// Served returns the handlers the running containerd's CRI serves now, in
// one attempt.
func (c *Checker) Served(ctx context.Context) ([]string, error) {
	st, err := c.Probe(ctx)
	if err != nil {
		return nil, err
	}
	return st.Handlers, nil
}

// Probe makes one attempt. Each call dials afresh, so that a restarted
// containerd is seen at once rather than after gRPC's reconnect backoff.
func (c *Checker) Probe(ctx context.Context) (*Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+c.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	st := &Status{}
	plugins, err := introspection.NewIntrospectionClient(conn).Plugins(ctx, &introspection.PluginsRequest{})
	if err != nil {
		return st, fmt.Errorf("containerd is not serving on %s: %w", c.Address, err)
	}
	st.Serving = true
	for _, p := range plugins.Plugins {
		if isCRI(p.Type, p.ID) && p.InitErr != nil {
			return st, fmt.Errorf("%w: %s.%s: %s", ErrCRIFailed, p.Type, p.ID, p.InitErr.Message)
		}
	}
	resp, err := runtimeapi.NewRuntimeServiceClient(conn).Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		return st, fmt.Errorf("CRI status: %w", err)
	}
	for _, cond := range resp.GetStatus().GetConditions() {
		if cond.Type == runtimeapi.RuntimeReady {
			st.CRIReady = cond.Status
			if !cond.Status {
				return st, fmt.Errorf("CRI runtime not ready: %s %s", cond.Reason, cond.Message)
			}
		}
	}
	st.Handlers, err = handlers(resp)
	return st, err
}

func isCRI(typ, id string) bool {
	switch typ + "." + id {
	case "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images":
		return true
	}
	return false
}

// handlers reads the served handlers: the runtime_handlers field where
// containerd fills it (2.x), else the runtimes of the verbose config (1.x).
func handlers(resp *runtimeapi.StatusResponse) ([]string, error) {
	var names []string
	for _, h := range resp.GetRuntimeHandlers() {
		if h.GetName() != "" {
			names = append(names, h.GetName())
		}
	}
	if len(names) == 0 {
		raw, ok := resp.GetInfo()["config"]
		if !ok {
			return nil, errors.New("CRI status has neither runtime handlers nor a config")
		}
		var cfg struct {
			Containerd struct {
				Runtimes map[string]json.RawMessage `json:"runtimes"`
			} `json:"containerd"`
		}
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
			return nil, fmt.Errorf("reading CRI status config: %w", err)
		}
		for n := range cfg.Containerd.Runtimes {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return slices.Compact(names), nil
}

func subtract(want, have []string) []string {
	var missing []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			missing = append(missing, w)
		}
	}
	return missing
}
