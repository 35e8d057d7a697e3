package ctrdconfig

import "github.com/pelletier/go-toml/v2"

// SandboxImage reads the sandbox (pause) image from containerd's config
// dump: sandbox_image of the CRI plugin (versions 1 and 2), or the pinned
// sandbox image of the CRI images plugin (3 and 4). "" if there is none.
func SandboxImage(dump []byte) string {
	var cfg map[string]any
	if err := toml.Unmarshal(dump, &cfg); err != nil {
		return ""
	}
	for _, path := range [][]string{
		{"plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"},
		{"plugins", "io.containerd.grpc.v1.cri", "sandbox_image"},
		{"plugins", "cri", "sandbox_image"},
	} {
		if s, ok := lookupTable(cfg, path).(string); ok && s != "" {
			return s
		}
	}
	return ""
}
