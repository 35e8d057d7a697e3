// Package crashpoint lets tests kill a real runtimeclassd process at a named
// step of its work, so that crash consistency is proven step by step rather
// than by killing at random moments and hoping one lands.
//
// It is configured from the environment, read once at the first Hit:
//
//	RUNTIMECLASSD_CRASH_AT=STEP[#N]   SIGKILL this process at the Nth hit
//	                                  (default 1st) of STEP.
//	RUNTIMECLASSD_CRASH_ONCE=FILE     crash only if FILE does not exist, and
//	                                  create it first (a service that systemd
//	                                  restarts then crashes once, not forever).
//	RUNTIMECLASSD_CRASH_TRACE=FILE    append every step hit to FILE, one per
//	                                  line (tests list the steps this way).
//
// A run of six or more digits in a step name (a time stamp in a backup's
// name) matches any other such run, so that a step seen in one run can be
// named for the next.
//
// With none of these set and no hook, Hit costs a sync.Once check and an
// uncontended mutex.
package crashpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

var (
	once   sync.Once
	mu     sync.Mutex
	at     string
	left   int
	onceAt string
	trace  string
	active bool
	hook   func(step string)
)

// SetHook makes every Hit call f first, in the calling goroutine; tests use
// it to act at an exact step (another writer's write, a stop). It returns a
// function that removes the hook. f must not call SetHook.
func SetHook(f func(step string)) (remove func()) {
	mu.Lock()
	hook = f
	mu.Unlock()
	return func() {
		mu.Lock()
		hook = nil
		mu.Unlock()
	}
}

func load() {
	spec := os.Getenv("RUNTIMECLASSD_CRASH_AT")
	trace = os.Getenv("RUNTIMECLASSD_CRASH_TRACE")
	onceAt = os.Getenv("RUNTIMECLASSD_CRASH_ONCE")
	at, left = spec, 1
	if i := strings.LastIndex(spec, "#"); i >= 0 {
		if v, err := strconv.Atoi(spec[i+1:]); err == nil && v > 0 {
			at, left = spec[:i], v
		}
	}
	at = normalize(at)
	active = at != "" || trace != ""
}

// Hit marks that the process reached step. It returns normally unless the
// environment asks for a crash here.
func Hit(step string) {
	once.Do(load)
	mu.Lock()
	h := hook
	mu.Unlock()
	if h != nil {
		h(step)
	}
	if !active {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	if trace != "" {
		if f, err := os.OpenFile(trace, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
			fmt.Fprintln(f, step)
			f.Close()
		}
	}
	if normalize(step) != at {
		return
	}
	if left--; left > 0 {
		return
	}
	if onceAt != "" {
		f, err := os.OpenFile(onceAt, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return // crashed here before
		}
		f.Close()
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	for {
		// SIGKILL to ourselves is delivered before kill(2) returns to this
		// thread; nothing after it runs.
		syscall.Pause()
	}
}

// normalize replaces each run of six or more digits with "*".
func normalize(step string) string {
	var b strings.Builder
	for i := 0; i < len(step); {
		j := i
		for j < len(step) && step[j] >= '0' && step[j] <= '9' {
			j++
		}
		switch {
		case j-i >= 6:
			b.WriteByte('*')
			i = j
		case j > i:
			b.WriteString(step[i:j])
			i = j
		default:
			b.WriteByte(step[i])
			i++
		}
	}
	return b.String()
}
