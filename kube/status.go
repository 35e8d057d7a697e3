package kube

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// FleetStatus is what `runtimeclassd fleet status` shows, read from the
// API: the slots and their holders, the nodes waiting for one, and the
// failed policies.
type FleetStatus struct {
	Namespace string
	Now       time.Time // the reader's clock, for the durations
	Slots     []SlotStatus
	Waiting   []NodeStatus
	Failed    []Failure
}

// SlotStatus is one slot Lease.
type SlotStatus struct {
	Name     string
	Holder   string // "" when free
	Acquired time.Time
	Renewed  time.Time
	Duration time.Duration
}

// HeldFor is how long the holder has held the slot, by the reader's clock.
func (s SlotStatus) HeldFor(now time.Time) time.Duration {
	if s.Holder == "" || s.Acquired.IsZero() {
		return 0
	}
	return now.Sub(s.Acquired)
}

// Stale reports whether the holder seems gone: no renewal for a lease
// duration by the reader's clock (a hint; takeover does not use it).
func (s SlotStatus) Stale(now time.Time) bool {
	return s.Holder != "" && !s.Renewed.IsZero() && now.Sub(s.Renewed) > s.Duration
}

// NodeStatus is a node's own Lease: whether it waits for a slot.
type NodeStatus struct {
	Node    string
	Since   time.Time
	Renewed time.Time
	Reason  string
	// Stale is true when the node stopped renewing its Lease: it gave up
	// waiting or died while waiting.
	Stale bool
}

// ReadStatus reads the fleet's state in namespace: one list of Leases and
// one read of the failure record.
func ReadStatus(ctx context.Context, c *Client, namespace string, now time.Time) (*FleetStatus, error) {
	list, err := c.listLeases(ctx, namespace, RoleLabel)
	if err != nil {
		return nil, fmt.Errorf("listing the fleet's Leases: %w", err)
	}
	st := &FleetStatus{Namespace: namespace, Now: now}
	for _, l := range list.Items {
		switch l.Metadata.Labels[RoleLabel] {
		case RoleSlot:
			s := SlotStatus{Name: l.Metadata.Name, Holder: l.holder(), Duration: l.duration()}
			if l.Spec.AcquireTime != nil {
				s.Acquired = l.Spec.AcquireTime.Time
			}
			if l.Spec.RenewTime != nil {
				s.Renewed = l.Spec.RenewTime.Time
			}
			st.Slots = append(st.Slots, s)
		case RoleNode:
			if l.Metadata.Labels[StateLabel] != StateWaiting {
				continue
			}
			n := NodeStatus{Node: l.holder(), Reason: l.Metadata.Annotations[ReasonAnnotation]}
			n.Since, _ = time.Parse(time.RFC3339, l.Metadata.Annotations[SinceAnnotation])
			if l.Spec.RenewTime != nil {
				n.Renewed = l.Spec.RenewTime.Time
				n.Stale = now.Sub(n.Renewed) > l.duration()
			}
			st.Waiting = append(st.Waiting, n)
		}
	}
	slices.SortFunc(st.Slots, func(a, b SlotStatus) int {
		return cmp.Or(cmp.Compare(len(a.Name), len(b.Name)), strings.Compare(a.Name, b.Name))
	})
	slices.SortFunc(st.Waiting, func(a, b NodeStatus) int {
		return cmp.Or(a.Since.Compare(b.Since), strings.Compare(a.Node, b.Node))
	})
	if st.Failed, err = NewFailures(c, namespace, nil).List(ctx); err != nil {
		return nil, err
	}
	return st, nil
}

// Held is the number of slots with a holder.
func (st *FleetStatus) Held() int {
	n := 0
	for _, s := range st.Slots {
		if s.Holder != "" {
			n++
		}
	}
	return n
}

// WriteText writes the status as `fleet status` prints it.
func (st *FleetStatus) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "namespace %s: %d slots, %d held, %d nodes waiting, %d failed policies\n\n",
		st.Namespace, len(st.Slots), st.Held(), len(st.Waiting), len(st.Failed))
	fmt.Fprintln(tw, "SLOT\tHOLDER\tHELD FOR\tLAST RENEWED")
	for _, s := range st.Slots {
		if s.Holder == "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\n", s.Name)
			continue
		}
		stale := ""
		if s.Stale(st.Now) {
			stale = " (expired: holder gone?)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago%s\n", s.Name, s.Holder, s.HeldFor(st.Now).Round(time.Second),
			st.Now.Sub(s.Renewed).Round(time.Second), stale)
	}
	if len(st.Waiting) > 0 {
		fmt.Fprintln(tw, "\nWAITING NODE\tFOR\tREASON")
		for _, n := range st.Waiting {
			reason := n.Reason
			if n.Stale {
				reason = "(stopped waiting or gone) " + reason
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Node, st.Now.Sub(n.Since).Round(time.Second), reason)
		}
	}
	if len(st.Failed) > 0 {
		fmt.Fprintln(tw, "\nFAILED POLICY\tNODE\tAT\tREASON")
		for _, f := range st.Failed {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Hash, f.Node, f.At.Local().Format(time.DateTime), f.Reason)
		}
	}
	return tw.Flush()
}
