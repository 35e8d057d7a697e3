package ctrdhealth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Smoke results.
const (
	SmokePassed = "passed"
	SmokeFailed = "failed"
	// SmokePending: the test could not run yet (the pod network is not
	// ready); it is not the handler's fault.
	SmokePending = "pending"
	// SmokeSkipped: the sandbox image is not on the node and pulling it was
	// not allowed.
	SmokeSkipped = "skipped"
)

// Labels that mark runtimeclassd's smoke-test sandboxes, so that leftovers
// are found and never mistaken for someone else's.
const (
	SmokeLabel        = "io.runtimeclassd.smoke"
	SmokeHandlerLabel = "io.runtimeclassd.handler"
	smokeNamespace    = "runtimeclassd-smoke"
)

// SmokeOptions tune a smoke test.
type SmokeOptions struct {
	// Image is the sandbox (pause) image containerd is configured with;
	// "" asks containerd (1.x reports it; 2.x does not).
	Image string
	// PodNetwork runs the sandbox in its own network namespace set up by
	// CNI, instead of on the node's network.
	PodNetwork bool
	// Pull allows pulling the sandbox image when the node doesn't have it.
	Pull bool
}

// SmokeResult is the outcome of one smoke test.
type SmokeResult struct {
	Handler string `json:"handler"`
	Result  string `json:"result"`
	// Detail is the CRI error of a failure, or why the test was pending or
	// skipped.
	Detail string `json:"detail,omitempty"`
	// Run is how long the sandbox took to run, Container how long a
	// container took to be created and started in it, Stop and Remove how
	// long stopping and removing both took; Took the whole.
	Run       time.Duration `json:"run_ns"`
	Container time.Duration `json:"container_ns"`
	Stop      time.Duration `json:"stop_ns"`
	Remove    time.Duration `json:"remove_ns"`
	Took      time.Duration `json:"took_ns"`
}

// Smoke starts a pod through the CRI with handler, as kubelet would for a
// pod of that RuntimeClass: a sandbox, and in it a container of the sandbox
// image (a runtime can start sandboxes and still hang on containers); then
// it stops and removes both. The sandbox is labelled as runtimeclassd's and
// uniquely named; it is removed whatever happens (RemoveLeftovers finds it
// after a crash).
func (c *Checker) Smoke(ctx context.Context, handler string, opts SmokeOptions) (res SmokeResult) {
	start := time.Now()
	res.Handler = handler
	defer func() { res.Took = time.Since(start) }()
	conn, err := c.dial()
	if err != nil {
		res.Result, res.Detail = SmokeFailed, err.Error()
		return res
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	images := runtimeapi.NewImageServiceClient(conn)

	st, err := rt.Status(ctx, &runtimeapi.StatusRequest{Verbose: opts.Image == ""})
	if err != nil {
		res.Result, res.Detail = SmokePending, fmt.Sprintf("CRI status: %v", err)
		return res
	}
	if opts.PodNetwork {
		for _, cond := range st.GetStatus().GetConditions() {
			if cond.Type == runtimeapi.NetworkReady && !cond.Status {
				res.Result, res.Detail = SmokePending, fmt.Sprintf("the pod network is not ready (%s: %s)", cond.Reason, cond.Message)
				return res
			}
		}
	}
	image := opts.Image
	if image == "" {
		image = sandboxImage(st.GetInfo())
	}
	if image == "" {
		res.Result, res.Detail = SmokeSkipped, "containerd does not say which sandbox image it uses"
		return res
	}
	is, err := images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: image}})
	if err != nil {
		res.Result, res.Detail = SmokeFailed, fmt.Sprintf("looking up sandbox image %s: %v", image, err)
		return res
	}
	if is.GetImage() == nil {
		if !opts.Pull {
			res.Result, res.Detail = SmokeSkipped, fmt.Sprintf("sandbox image %s is not on this node, and pulling it is not allowed (smoke_pull)", image)
			return res
		}
		if _, err := images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: image}}); err != nil {
			res.Result, res.Detail = SmokeSkipped, fmt.Sprintf("pulling sandbox image %s: %v", image, err)
			return res
		}
	}

	name := "runtimeclassd-smoke-" + randomHex(6)
	// On the node's network the sandbox shares the node's UTS namespace
	// too, where CRI refuses to set a hostname.
	netMode, hostname := runtimeapi.NamespaceMode_NODE, ""
	if opts.PodNetwork {
		netMode, hostname = runtimeapi.NamespaceMode_POD, "runtimeclassd-smoke"
	}
	config := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Uid: randomHex(16), Namespace: smokeNamespace},
		Hostname: hostname,
		Labels:   map[string]string{SmokeLabel: "true", SmokeHandlerLabel: handler},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: netMode},
		}},
	}
	t0 := time.Now()
	run, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: config, RuntimeHandler: handler})
	res.Run = time.Since(t0)
	if err != nil {
		res.Result, res.Detail = SmokeFailed, fmt.Sprintf("RunPodSandbox with handler %s: %v", handler, err)
		// A failed run can leave a sandbox record behind: remove it now
		// rather than at the next start.
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		c.removeSandboxes(cleanup, rt, map[string]string{SmokeLabel: "true", SmokeHandlerLabel: handler})
		return res
	}
	id := run.GetPodSandboxId()
	// Stop and remove even if ctx ended meanwhile: a sandbox must never be
	// left running.
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	t0 = time.Now()
	cid, cerr := startContainer(ctx, rt, id, config, image)
	res.Container = time.Since(t0)
	t0 = time.Now()
	var stopErr, rmErr error
	if cid != "" {
		_, stopErr = rt.StopContainer(cleanup, &runtimeapi.StopContainerRequest{ContainerId: cid, Timeout: 10})
	}
	if _, err := rt.StopPodSandbox(cleanup, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		stopErr = errors.Join(stopErr, err)
	}
	res.Stop = time.Since(t0)
	t0 = time.Now()
	if cid != "" {
		_, rmErr = rt.RemoveContainer(cleanup, &runtimeapi.RemoveContainerRequest{ContainerId: cid})
	}
	if _, err := rt.RemovePodSandbox(cleanup, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		rmErr = errors.Join(rmErr, err)
	}
	res.Remove = time.Since(t0)
	switch {
	case cerr != nil:
		res.Result, res.Detail = SmokeFailed, fmt.Sprintf("the sandbox ran, but a container in it did not start: %v", cerr)
	case stopErr != nil || rmErr != nil:
		res.Result, res.Detail = SmokeFailed, fmt.Sprintf("the pod ran, but stopping and removing it failed: %v", errors.Join(stopErr, rmErr))
	default:
		res.Result = SmokePassed
	}
	return res
}

// startContainer creates and starts, in the sandbox, a container of the
// sandbox image with its own entrypoint, and returns its ID ("" if it was
// not created).
func startContainer(ctx context.Context, rt runtimeapi.RuntimeServiceClient, sandbox string, sc *runtimeapi.PodSandboxConfig, image string) (string, error) {
	c, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: sandbox,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "smoke"},
			Image:    &runtimeapi.ImageSpec{Image: image},
			Labels:   map[string]string{SmokeLabel: "true"},
		},
		SandboxConfig: sc,
	})
	if err != nil {
		return "", fmt.Errorf("CreateContainer: %w", err)
	}
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.GetContainerId()}); err != nil {
		return c.GetContainerId(), fmt.Errorf("StartContainer: %w", err)
	}
	return c.GetContainerId(), nil
}

// RemoveLeftovers stops and removes every smoke-test sandbox containerd
// still has (a crash in the middle of a test leaves one), and returns how
// many it removed.
func (c *Checker) RemoveLeftovers(ctx context.Context) (int, error) {
	conn, err := c.dial()
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return c.removeSandboxes(ctx, runtimeapi.NewRuntimeServiceClient(conn), map[string]string{SmokeLabel: "true"})
}

func (c *Checker) removeSandboxes(ctx context.Context, rt runtimeapi.RuntimeServiceClient, labels map[string]string) (int, error) {
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: labels}})
	if err != nil {
		return 0, fmt.Errorf("listing smoke-test sandboxes: %w", err)
	}
	var errs []error
	n := 0
	// Containers first: a sandbox is removed with them, but stopping them
	// on their own keeps each stop bounded.
	if cs, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: map[string]string{SmokeLabel: "true"}}}); err == nil {
		for _, c := range cs.GetContainers() {
			rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c.GetId(), Timeout: 10})
			rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.GetId()})
		}
	}
	for _, sb := range list.GetItems() {
		_, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.GetId()})
		if err == nil {
			_, err = rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.GetId()})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("removing smoke-test sandbox %s: %w", sb.GetId(), err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// SmokeSandboxes counts the smoke-test sandboxes containerd has (tests use
// it to prove none is left).
func (c *Checker) SmokeSandboxes(ctx context.Context) (int, error) {
	conn, err := c.dial()
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	list, err := runtimeapi.NewRuntimeServiceClient(conn).ListPodSandbox(ctx,
		&runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{SmokeLabel: "true"}}})
	if err != nil {
		return 0, err
	}
	return len(list.GetItems()), nil
}

func (c *Checker) dial() (*grpc.ClientConn, error) {
	return grpc.NewClient("unix://"+c.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// sandboxImage reads the sandbox image from the verbose CRI status of
// containerd 1.x; 2.x does not report it.
func sandboxImage(info map[string]string) string {
	var cfg struct {
		SandboxImage string `json:"sandboxImage"`
	}
	if err := json.Unmarshal([]byte(info["config"]), &cfg); err != nil {
		return ""
	}
	return cfg.SandboxImage
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
