package encoder_test

import (
	"encoding/json"
	"github.com/dmad/workstation/internal/alloccheck"
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
		alloccheck.Within(t, alloccheck.Bound(len(data)), func() {
			c, err := encoder.ParseCard(data)
			if err == nil {
				c.Channels()
				c.FinestStride()
				c.MaxStride()
				c.DefaultConfig()
			}
		})
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
		// The builder keeps the loaded graph and writes a new one: twice
		// the decoder's bound.
		alloccheck.Within(t, 2*alloccheck.Bound(len(data)), func() {
			encoder.BuildFeatureGraph(card, data, cfg)
		})
	})
}
