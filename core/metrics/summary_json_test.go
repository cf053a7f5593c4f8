package metrics_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/metrics"
)

// Issue 11, defect 6: eval/inspect on a test set with only good (or only
// defective) images failed with "json: unsupported value: NaN" and wrote no
// JSON. Undefined metrics are null with a reason.
func TestSingleClassMetricsMarshal(t *testing.T) {
	scores := []float32{0.1, 0.5, 0.3}
	for _, tc := range []struct {
		name   string
		labels []bool
		null   []string
		reason string
	}{
		{"only good", []bool{false, false, false}, []string{"image_auroc", "image_ap", "image_f1max"}, metrics.ReasonNoPositives},
		{"only defective", []bool{true, true, true}, []string{"image_auroc"}, metrics.ReasonOneClass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im := metrics.Image(scores, tc.labels)
			m := metrics.Summary{ImageAUROC: im.AUROC, ImageAP: im.AP, ImageF1Max: im.F1Max, PixelAUROC: math.NaN(), PixelAP: 0.5, PRO: 0.25}
			js, err := json.Marshal(map[string]any{"mean": m, "per": map[string]metrics.Summary{"bottle": m}})
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range append(tc.null, "pixel_auroc") {
				if !strings.Contains(string(js), `"`+name+`":null`) {
					t.Errorf("%s not null in %s", name, js)
				}
			}
			if !strings.Contains(string(js), tc.reason) || !strings.Contains(string(js), `"pro":0.25`) {
				t.Errorf("reason or defined value missing: %s", js)
			}
			var back metrics.Summary
			if err := json.Unmarshal(js[strings.Index(string(js), `"mean":`)+7:strings.Index(string(js), `,"per"`)], &back); err != nil {
				t.Fatal(err)
			}
			if !math.IsNaN(back.ImageAUROC) || back.PRO != 0.25 {
				t.Errorf("round trip: %+v", back)
			}
		})
	}
}
