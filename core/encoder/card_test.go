package encoder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmad/workstation/assets"
)

func TestParseCard(t *testing.T) {
	const feats = `"feature_tensors": [{"tensor": "a", "stride": 8, "channels": 4}, {"tensor": "b", "stride": 16, "channels": 6}]`
	tests := []struct {
		name    string
		json    string
		wantErr string // "" = valid
	}{
		{"scale", `{"name": "n", "input": "x", "normalize": {"scale": 0.5}, ` + feats + `}`, ""},
		{"mean/std", `{"name": "n", "input": "x", "normalize": {"mean": [0.4, 0.5, 0.6], "std": [0.2, 0.2, 0.2]}, ` + feats + `}`, ""},
		{"crop number", `{"name": "n", "input": "x", "normalize": {"scale": 1}, "preprocess": {"resize": 256, "crop": 224}, ` + feats + `}`, ""},
		{"no name", `{"input": "x", "normalize": {"scale": 1}, ` + feats + `}`, "no name"},
		{"no input", `{"name": "n", "normalize": {"scale": 1}, ` + feats + `}`, "no input"},
		{"bad layout", `{"name": "n", "input": "x", "layout": "CHW", "normalize": {"scale": 1}, ` + feats + `}`, "layout"},
		{"bad color", `{"name": "n", "input": "x", "color": "YUV", "normalize": {"scale": 1}, ` + feats + `}`, "color"},
		{"no normalisation", `{"name": "n", "input": "x", ` + feats + `}`, "normalize"},
		{"mean without std", `{"name": "n", "input": "x", "normalize": {"mean": [0, 0, 0]}, ` + feats + `}`, "mean and std"},
		{"zero std", `{"name": "n", "input": "x", "normalize": {"mean": [0, 0, 0], "std": [1, 0, 1]}, ` + feats + `}`, "zero"},
		{"both", `{"name": "n", "input": "x", "normalize": {"scale": 1, "mean": [0, 0, 0], "std": [1, 1, 1]}, ` + feats + `}`, "not both"},
		{"no features", `{"name": "n", "input": "x", "normalize": {"scale": 1}}`, "feature_tensors"},
		{"duplicate tensor", `{"name": "n", "input": "x", "normalize": {"scale": 1}, "feature_tensors": [{"tensor": "a", "stride": 8, "channels": 4}, {"tensor": "a", "stride": 8, "channels": 4}]}`, "twice"},
		{"bad stride", `{"name": "n", "input": "x", "normalize": {"scale": 1}, "feature_tensors": [{"tensor": "a", "stride": 0, "channels": 4}]}`, "stride"},
		{"bad sha", `{"name": "n", "input": "x", "sha256": "xyz", "normalize": {"scale": 1}, ` + feats + `}`, "sha256"},
		{"not json", `{"name": `, "parse"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCard([]byte(tc.json))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Layout != "NCHW" || c.Color != "RGB" || c.Channels() != 10 || c.FinestStride() != 8 || c.MaxStride() != 16 {
					t.Errorf("defaults/derived wrong: %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
	c, err := ParseCard([]byte(`{"name": "n", "input": "x", "normalize": {"scale": 1}, "preprocess": {"resize": [256, 256], "crop": 224}, ` + feats + `}`))
	if err != nil || len(c.Preprocess.Crop) != 2 || c.Preprocess.Crop[0] != 224 || c.Preprocess.Resize[1] != 256 {
		t.Errorf("preprocess %+v, %v", c.Preprocess, err)
	}
}

func TestLoadCardNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(p, []byte(`{"name": "x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{p, filepath.Join(t.TempDir(), "missing.json")} {
		if _, err := LoadCard(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("LoadCard(%s) error %v does not name the file", path, err)
		}
	}
}

// TestShippedCards parses every card in assets/backbones and checks the
// MobileNetV2 one against the shared original when present.
func TestShippedCards(t *testing.T) {
	cards := assets.BackboneCards()
	for _, name := range []string{"mobilenet_v2_imagenet", "resnet18", "wide_resnet50_2"} {
		data, ok := cards[name]
		if !ok {
			t.Errorf("card %s not shipped (have %d cards)", name, len(cards))
			continue
		}
		c, err := ParseCard(data)
		if err != nil {
			t.Errorf("card %s: %v", name, err)
			continue
		}
		if c.Name != name {
			t.Errorf("card file %s is named %q", name, c.Name)
		}
		if c.FinestStride() != 8 || len(c.FeatureTensors) != 2 {
			t.Errorf("card %s: strides %v", name, c.FeatureTensors)
		}
	}
	shared := sharedDir(t)
	orig, err := LoadCard(filepath.Join(shared, "models", "mobilenet_v2_imagenet.json"))
	if err != nil {
		t.Fatal(err)
	}
	mine, err := ParseCard(cards["mobilenet_v2_imagenet"])
	if err != nil {
		t.Fatal(err)
	}
	if orig.SHA256 != mine.SHA256 || orig.Input != mine.Input || orig.Channels() != mine.Channels() ||
		orig.Normalize.Scale != mine.Normalize.Scale || orig.Normalize.Offset != mine.Normalize.Offset {
		t.Errorf("shipped MobileNetV2 card differs from %s", shared)
	}
}
