package metrics

import "testing"

func TestSummaryPutSet(t *testing.T) {
	s := Summary{ImageAUROC: 0.9, ImageAP: 0.8, ImageF1Max: 0.7, PixelAUROC: 0.6, PixelAP: 0.5, PRO: 0.4}
	m := map[string]float64{}
	s.Put(m, "bottle/")
	if len(m) != 6 || m["bottle/image_auroc"] != 0.9 || m["bottle/pro"] != 0.4 {
		t.Fatalf("Put: %v", m)
	}
	var back Summary
	for k, v := range m {
		if !back.Set(k[len("bottle/"):], v) {
			t.Errorf("Set(%q) not a metric", k)
		}
	}
	if back != s {
		t.Errorf("round trip %+v, want %+v", back, s)
	}
	if back.Set("accuracy", 1) {
		t.Error("Set accepted an unknown metric")
	}
}
