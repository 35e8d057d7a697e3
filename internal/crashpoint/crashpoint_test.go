package crashpoint

import "testing"

func TestNormalize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"write config.toml.20261128T165008.631104866Z: begin": "write config.toml.*T*.*Z: begin",
		"write state.json: renamed":                           "write state.json: renamed",
		"apply: intent recorded#12345":                        "apply: intent recorded#12345",
	} {
		if got := normalize(in); got != want {
			t.Errorf("normalize(%q) = %q, want %q", in, got, want)
		}
	}
}
