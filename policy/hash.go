package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// Hash identifies what the policy asks for: its handlers as resolved, not
// the files' bytes, so that a comment or a file renamed does not count as a
// change but any handler setting does.
func (p *Policy) Hash() string {
	hs := make([]Handler, len(p.Handlers))
	for i, h := range p.Handlers {
		h.Source = ""
		hs[i] = h
	}
	b, err := json.Marshal(hs)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
