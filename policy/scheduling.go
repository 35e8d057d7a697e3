package policy

import (
	"fmt"
	"slices"
	"strings"
)

// How a handler's sandbox smoke test runs.
const (
	// SmokeHost runs the test sandbox on the node's network: no CNI needed.
	SmokeHost = "host"
	// SmokePod runs it in its own network namespace, set up by CNI (Kata
	// does not support the node's network).
	SmokePod = "pod"
	// SmokeOff offers the handler once containerd serves it, untested.
	SmokeOff = "off"
)

// RuntimeClass is the extra scheduling a handler's RuntimeClass carries
// besides runtimeclassd's own label: the procedure it automates puts
// untrusted pods on their own, tainted nodes.
type RuntimeClass struct {
	// NodeSelector adds labels a node must have.
	NodeSelector map[string]string `toml:"node_selector"`
	// Tolerations let the RuntimeClass's pods onto tainted nodes.
	Tolerations []Toleration `toml:"tolerations"`
	// Overhead replaces the pod overhead (for example Kata's VM): resource
	// name to quantity, such as memory = "160Mi", cpu = "250m".
	Overhead map[string]string `toml:"overhead"`
}

// Toleration is a Kubernetes toleration.
type Toleration struct {
	Key               string `toml:"key"`
	Operator          string `toml:"operator"`
	Value             string `toml:"value"`
	Effect            string `toml:"effect"`
	TolerationSeconds *int64 `toml:"toleration_seconds"`
}

var overheadNames = []string{"cpu", "memory"}

// checkScheduling applies the smoke mode and RuntimeClass rules.
func checkScheduling(smoke string, rc *RuntimeClass) []fieldErr {
	var errs []fieldErr
	fail := func(msg string, key ...string) { errs = append(errs, fieldErr{key: key, msg: msg}) }
	if !slices.Contains([]string{SmokeHost, SmokePod, SmokeOff}, smoke) {
		fail(fmt.Sprintf("smoke %q must be %q (the node's network), %q (a pod network through CNI) or %q", smoke, SmokeHost, SmokePod, SmokeOff), "smoke")
	}
	if rc == nil {
		return errs
	}
	for k, v := range rc.NodeSelector {
		if msg := checkLabelKey(k); msg != "" {
			fail(msg, "runtimeclass", "node_selector", k)
		}
		if v != "" && (len(v) > 63 || !isLabelName(v)) {
			fail(fmt.Sprintf("label value %q is not valid (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)", v), "runtimeclass", "node_selector", k)
		}
	}
	for i, tol := range rc.Tolerations {
		key := []string{"runtimeclass", "tolerations"}
		at := fmt.Sprintf("tolerations[%d]: ", i)
		switch tol.Operator {
		case "", "Equal":
			if tol.Key == "" {
				fail(at+"operator Equal needs a key", key...)
			}
		case "Exists":
			if tol.Value != "" {
				fail(at+"operator Exists takes no value", key...)
			}
		default:
			fail(fmt.Sprintf("%soperator %q must be Equal or Exists", at, tol.Operator), key...)
		}
		if tol.Key != "" {
			if msg := checkLabelKey(tol.Key); msg != "" {
				fail(at+msg, key...)
			}
		}
		if !slices.Contains([]string{"", "NoSchedule", "PreferNoSchedule", "NoExecute"}, tol.Effect) {
			fail(fmt.Sprintf("%seffect %q must be NoSchedule, PreferNoSchedule or NoExecute", at, tol.Effect), key...)
		}
		if tol.TolerationSeconds != nil && tol.Effect != "NoExecute" {
			fail(at+"toleration_seconds applies only to effect NoExecute", key...)
		}
	}
	for name, q := range rc.Overhead {
		if !slices.Contains(overheadNames, name) {
			fail(fmt.Sprintf("overhead resource %q must be one of %s", name, strings.Join(overheadNames, ", ")), "runtimeclass", "overhead", name)
		}
		if !isQuantity(q) {
			fail(fmt.Sprintf("quantity %q is not a Kubernetes quantity (such as 250m or 160Mi)", q), "runtimeclass", "overhead", name)
		}
	}
	return errs
}

// checkLabelKey checks a Kubernetes label key: an optional DNS subdomain
// prefix and "/", then a name.
func checkLabelKey(k string) string {
	prefix, name, found := strings.Cut(k, "/")
	if !found {
		prefix, name = "", k
	}
	if found && (len(prefix) > 253 || !isDNSSubdomain(prefix)) {
		return fmt.Sprintf("label key %q has an invalid prefix (a DNS subdomain)", k)
	}
	if len(name) == 0 || len(name) > 63 || !isLabelName(name) {
		return fmt.Sprintf("label key %q is not valid (a name of at most 63 letters, digits, '-', '_' or '.')", k)
	}
	return ""
}
