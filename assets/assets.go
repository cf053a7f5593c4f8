package assets

import (
	"embed"
	"path"
	"strings"
)

//go:embed backbones/*.json
var backboneFS embed.FS

// BackboneCards returns the backbone cards shipped with the workstation
// (assets/backbones/*.json), keyed by file name without ".json". The map
// and byte slices are fresh copies on every call.
func BackboneCards() map[string][]byte {
	entries, err := backboneFS.ReadDir("backbones")
	if err != nil {
		return map[string][]byte{}
	}
	cards := make(map[string][]byte, len(entries))
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") {
			continue
		}
		data, err := backboneFS.ReadFile(path.Join("backbones", name))
		if err != nil {
			continue
		}
		cards[strings.TrimSuffix(name, ".json")] = data
	}
	return cards
}

// BackboneCard returns the shipped card with the given name (file name
// without ".json").
func BackboneCard(name string) ([]byte, bool) {
	data, err := backboneFS.ReadFile(path.Join("backbones", name+".json"))
	if err != nil {
		return nil, false
	}
	return data, true
}
