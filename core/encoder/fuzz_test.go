package encoder_test

import (
	"encoding/json"
	"testing"

	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/encoder/encodertest"
)

// FuzzParseCard: a backbone card comes from anyone (a download, a colleague):
// any bytes give a validated card or an error, never a crash.
func FuzzParseCard(f *testing.F) {
	js, _ := json.Marshal(encodertest.Card())
	f.Add(js)
	f.Add([]byte(`{"name":"x","input":"i","normalize":{"scale":1},"feature_tensors":[{"tensor":"t","stride":8,"channels":4}],"preprocess":{"resize":[1,2]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := encoder.ParseCard(data)
		if err == nil {
			c.Channels()
			c.FinestStride()
			c.MaxStride()
			c.DefaultConfig()
		}
	})
}

// FuzzBuildFeatureGraph: ONNX bytes (a backbone file) through the graph
// loader and the feature-graph builder, with the tiny test card.
func FuzzBuildFeatureGraph(f *testing.F) {
	bb, err := encodertest.Backbone(1)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bb)
	card := encodertest.Card()
	cfg := card.DefaultConfig()
	f.Fuzz(func(t *testing.T, data []byte) {
		encoder.BuildFeatureGraph(card, data, cfg)
	})
}
