package daemon

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/runtimeclassd/runtimeclassd/policy"
)

// TestPackagedConfig: the daemon config the packages install loads, sets
// mode auto, and every default it shows in a comment is the daemon's real
// default, so the file can't tell an operator something untrue.
func TestPackagedConfig(t *testing.T) {
	t.Parallel()
	const path = "../packaging/config.toml"
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != ModeAuto {
		t.Fatalf("packaged mode %q, want auto", cfg.Mode)
	}
	src, _ := os.ReadFile(path)
	// Uncomment "# key = value" lines, dropping their trailing comments.
	line := regexp.MustCompile(`(?m)^# ([a-z_]+ = ("[^"]*"|\[[^\]]*\]|[^ #\n]+)).*$`)
	uncommented := line.ReplaceAllString(string(src), "$1")
	if !strings.Contains(uncommented, "\nresync_interval = \"5m\"\n") {
		t.Fatalf("the commented defaults were not found:\n%s", uncommented)
	}
	f := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(f, []byte(uncommented), 0o644)
	shown, err := LoadConfig(f)
	if err != nil {
		t.Fatalf("the commented defaults don't load: %v\n%s", err, uncommented)
	}
	want := DefaultConfig()
	want.Mode = ModeAuto
	want.AllowedPathPrefixes = policy.DefaultAllowedPrefixes // nil in the config means these
	want.File = f
	if !reflect.DeepEqual(shown, want) {
		t.Fatalf("the packaged config shows defaults that are not the daemon's:\n%+v\nwant\n%+v", shown, want)
	}
}
