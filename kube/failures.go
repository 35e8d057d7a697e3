package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// FailuresConfigMap is the name of the fleet's failure record: a ConfigMap
// in the budget's namespace whose data maps a policy hash to the JSON of a
// Failure. packaging/rbac.yaml creates it empty.
const FailuresConfigMap = "runtimeclassd-failures"

// maxFailures bounds the record (a ConfigMap holds at most 1 MiB); the
// oldest entries go first.
const maxFailures = 200

// Failure is a policy that failed on a node: containerd did not come back
// healthy with it, and the node rolled back.
type Failure struct {
	Hash   string    `json:"-"`
	Node   string    `json:"node"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Failures is the fleet's record of failed policies. Every change is a
// replace of the ConfigMap at the resourceVersion read, retried on a
// conflict, so concurrent records from several nodes are all kept.
type Failures struct {
	client    *Client
	namespace string
	clock     Clock
}

// NewFailures returns the failure record in namespace. clock may be nil.
func NewFailures(c *Client, namespace string, clock Clock) *Failures {
	if clock == nil {
		clock = realClock{}
	}
	return &Failures{client: c, namespace: namespace, clock: clock}
}

type configMap struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   objectMeta        `json:"metadata"`
	Data       map[string]string `json:"data,omitempty"`
}

func (f *Failures) path() string {
	return "/api/v1/namespaces/" + url.PathEscape(f.namespace) + "/configmaps/" + FailuresConfigMap
}

func (f *Failures) get(ctx context.Context) (*configMap, error) {
	var cm configMap
	if err := f.client.do(ctx, http.MethodGet, f.path(), nil, "", nil, &cm); err != nil {
		if StatusCode(err) == http.StatusNotFound {
			return nil, fmt.Errorf("the failure record %s/%s does not exist (packaging/rbac.yaml creates it): %w", f.namespace, FailuresConfigMap, err)
		}
		return nil, fmt.Errorf("reading the failure record: %w", err)
	}
	return &cm, nil
}

// modify applies change to the record and writes it at the version read,
// rereading and reapplying at once on a conflict (someone else's write
// landed in between; the reread includes it).
func (f *Failures) modify(ctx context.Context, change func(data map[string]string)) error {
	for attempt := 0; ; attempt++ {
		cm, err := f.get(ctx)
		if err != nil {
			return err
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		change(cm.Data)
		cm.APIVersion, cm.Kind = "v1", "ConfigMap"
		err = f.client.do(ctx, http.MethodPut, f.path(), nil, "", cm, nil)
		if err == nil {
			return nil
		}
		if StatusCode(err) != http.StatusConflict || attempt >= 20 {
			return fmt.Errorf("writing the failure record: %w", err)
		}
	}
}

// validHash is what a ConfigMap key may be: [-._a-zA-Z0-9]+, at most 253.
func validHash(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	return !strings.ContainsFunc(h, func(r rune) bool {
		return !(r == '-' || r == '.' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	})
}

// Record records that policy hash failed on node, and why.
func (f *Failures) Record(ctx context.Context, hash, node, reason string) error {
	if !validHash(hash) {
		return fmt.Errorf("recording a failure: policy hash %q is not a ConfigMap key", hash)
	}
	v, err := json.Marshal(Failure{Node: node, Reason: truncate(reason, 1024), At: f.clock.Now().UTC()})
	if err != nil {
		return err
	}
	return f.modify(ctx, func(data map[string]string) {
		data[hash] = string(v)
		if len(data) > maxFailures {
			all := decodeFailures(data)
			for _, old := range all[:len(all)-maxFailures] {
				delete(data, old.Hash)
			}
		}
	})
}

// Lookup returns the failure recorded for hash, if any.
func (f *Failures) Lookup(ctx context.Context, hash string) (Failure, bool, error) {
	cm, err := f.get(ctx)
	if err != nil {
		return Failure{}, false, err
	}
	v, ok := cm.Data[hash]
	if !ok {
		return Failure{}, false, nil
	}
	fl := Failure{Hash: hash}
	if err := json.Unmarshal([]byte(v), &fl); err != nil {
		// Someone wrote it by hand: a failure all the same.
		fl.Reason = v
	}
	return fl, true, nil
}

// List returns every recorded failure, oldest first.
func (f *Failures) List(ctx context.Context) ([]Failure, error) {
	cm, err := f.get(ctx)
	if err != nil {
		return nil, err
	}
	return decodeFailures(cm.Data), nil
}

func decodeFailures(data map[string]string) []Failure {
	var out []Failure
	for h, v := range data {
		fl := Failure{Hash: h}
		if err := json.Unmarshal([]byte(v), &fl); err != nil {
			fl.Reason = v
		}
		out = append(out, fl)
	}
	slices.SortFunc(out, func(a, b Failure) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.Hash, b.Hash)
	})
	return out
}

// Clear forgets the given hashes, or every failure when none is given
// (`runtimeclassd fleet clear`).
func (f *Failures) Clear(ctx context.Context, hashes ...string) error {
	return f.modify(ctx, func(data map[string]string) {
		if len(hashes) == 0 {
			clear(data)
		}
		for _, h := range hashes {
			delete(data, h)
		}
	})
}
