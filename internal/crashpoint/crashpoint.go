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
// With none of these set, Hit costs one sync.Once check.
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
)

func load() {
	spec := os.Getenv("RUNTIMECLASSD_CRASH_AT")
	trace = os.Getenv("RUNTIMECLASSD_CRASH_TRACE")
	onceAt = os.Getenv("RUNTIMECLASSD_CRASH_ONCE")
	at, left = spec, 1
	if name, n, ok := strings.Cut(spec, "#"); ok {
		at = name
		if v, err := strconv.Atoi(n); err == nil && v > 0 {
			left = v
		}
	}
	active = at != "" || trace != ""
}

// Hit marks that the process reached step. It returns normally unless the
// environment asks for a crash here.
func Hit(step string) {
	once.Do(load)
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
	if step != at {
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
