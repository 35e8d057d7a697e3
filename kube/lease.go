package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// The objects of coordination.k8s.io/v1 and core/v1 this package writes,
// with only the fields it reads or writes. Leases and the failure record
// are ours alone, so a replace that drops fields we don't know loses
// nothing.

type objectMeta struct {
	Name              string            `json:"name"`
	Namespace         string            `json:"namespace,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
	CreationTimestamp string            `json:"creationTimestamp,omitempty"`
	// rest holds, as read, the metadata this package doesn't model
	// (finalizers, ownerReferences, uid, managedFields...): a replace
	// writes them back, so that nothing another tool put there is lost.
	rest map[string]json.RawMessage
}

// metaFields are the JSON names objectMeta models.
var metaFields = []string{"name", "namespace", "resourceVersion", "labels", "annotations", "creationTimestamp"}

type plainMeta objectMeta

func (m *objectMeta) UnmarshalJSON(b []byte) error {
	var p plainMeta
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for _, k := range metaFields {
		delete(all, k)
	}
	*m = objectMeta(p)
	if len(all) > 0 {
		m.rest = all
	}
	return nil
}

func (m objectMeta) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(plainMeta(m))
	if err != nil || len(m.rest) == 0 {
		return b, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	for k, v := range m.rest {
		if _, ours := all[k]; !ours {
			all[k] = v
		}
	}
	return json.Marshal(all)
}

type lease struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       leaseSpec  `json:"spec"`
}

type leaseSpec struct {
	HolderIdentity       *string    `json:"holderIdentity,omitempty"`
	LeaseDurationSeconds *int32     `json:"leaseDurationSeconds,omitempty"`
	AcquireTime          *microTime `json:"acquireTime,omitempty"`
	RenewTime            *microTime `json:"renewTime,omitempty"`
	LeaseTransitions     *int32     `json:"leaseTransitions,omitempty"`
}

type leaseList struct {
	Metadata struct {
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
	Items []lease `json:"items"`
}

func (l *lease) holder() string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func (l *lease) duration() time.Duration {
	if l.Spec.LeaseDurationSeconds == nil {
		return 0
	}
	return time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
}

func (l *lease) transitions() int32 {
	if l.Spec.LeaseTransitions == nil {
		return 0
	}
	return *l.Spec.LeaseTransitions
}

func ptr[T any](v T) *T { return &v }

// microTime is metav1.MicroTime: RFC 3339 with microseconds.
type microTime struct{ time.Time }

const microLayout = "2006-01-02T15:04:05.000000Z07:00"

func (t microTime) MarshalJSON() ([]byte, error) {
	return []byte(`"` + t.UTC().Format(microLayout) + `"`), nil
}

func (t *microTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return fmt.Errorf("time %s: not a string", b)
	}
	v, err := time.Parse(time.RFC3339Nano, string(b[1:len(b)-1]))
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

func mt(t time.Time) *microTime { return &microTime{t} }

func leasesPath(ns string) string {
	return "/apis/coordination.k8s.io/v1/namespaces/" + url.PathEscape(ns) + "/leases"
}

// listLeases lists the namespace's Leases that match a label selector. It
// reads the API server's cache (resourceVersion=0): a stale answer is
// harmless, because every write that follows is made at the version read
// and fails with a conflict if the Lease moved on.
func (c *Client) listLeases(ctx context.Context, ns, selector string) (*leaseList, error) {
	q := url.Values{"labelSelector": {selector}, "resourceVersion": {"0"}}
	var out leaseList
	if err := c.do(ctx, http.MethodGet, leasesPath(ns), q, "", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *Client) getLease(ctx context.Context, ns, name string) (*lease, error) {
	var out lease
	if err := c.do(ctx, http.MethodGet, leasesPath(ns)+"/"+url.PathEscape(name), nil, "", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// createLease creates l; it fails with 409 AlreadyExists if another node
// created it first.
func (c *Client) createLease(ctx context.Context, l *lease) (*lease, error) {
	l.APIVersion, l.Kind = "coordination.k8s.io/v1", "Lease"
	l.Metadata.ResourceVersion = ""
	var out lease
	if err := c.do(ctx, http.MethodPost, leasesPath(l.Metadata.Namespace), nil, "", l, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// updateLease replaces l at its resourceVersion; it fails with 409 Conflict
// if the Lease changed since it was read.
func (c *Client) updateLease(ctx context.Context, l *lease) (*lease, error) {
	l.APIVersion, l.Kind = "coordination.k8s.io/v1", "Lease"
	var out lease
	if err := c.do(ctx, http.MethodPut, leasesPath(l.Metadata.Namespace)+"/"+url.PathEscape(l.Metadata.Name), nil, "", l, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
