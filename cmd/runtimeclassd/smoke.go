//go:build !runtimeclassd_lite

package main

import (
	"context"

	"github.com/runtimeclassd/runtimeclassd/ctrdhealth"
	"github.com/runtimeclassd/runtimeclassd/daemon"
)

// smoker adapts ctrdhealth's sandbox smoke test to the daemon's Smoker,
// which keeps its own types so that the daemon package needs no CRI client.
type smoker struct{ c *ctrdhealth.Checker }

func (s smoker) Smoke(ctx context.Context, handler string, o daemon.SmokeOptions) daemon.SmokeResult {
	r := s.c.Smoke(ctx, handler, ctrdhealth.SmokeOptions{Image: o.Image, PodNetwork: o.PodNetwork, Pull: o.Pull})
	return daemon.SmokeResult{Handler: r.Handler, Result: r.Result, Detail: r.Detail, Run: r.Run, Container: r.Container, Stop: r.Stop, Remove: r.Remove, Took: r.Took}
}

func (s smoker) RemoveLeftovers(ctx context.Context) (int, error) { return s.c.RemoveLeftovers(ctx) }
