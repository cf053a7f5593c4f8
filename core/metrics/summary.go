package metrics

// Summary is the protocol's metrics of one category or their mean
// (METHOD.md §6): the one type the engine, the project's stored runs, the
// reports and the desktop application's views share.
type Summary struct {
	ImageAUROC float64 `json:"image_auroc"`
	ImageAP    float64 `json:"image_ap"`
	ImageF1Max float64 `json:"image_f1max"`
	PixelAUROC float64 `json:"pixel_auroc"`
	PixelAP    float64 `json:"pixel_ap"`
	PRO        float64 `json:"pro"`
}

// fields lists the metrics with their keys, once.
func (s *Summary) fields() []struct {
	key string
	v   *float64
} {
	return []struct {
		key string
		v   *float64
	}{
		{"image_auroc", &s.ImageAUROC}, {"image_ap", &s.ImageAP}, {"image_f1max", &s.ImageF1Max},
		{"pixel_auroc", &s.PixelAUROC}, {"pixel_ap", &s.PixelAP}, {"pro", &s.PRO},
	}
}

// Put writes the metrics into m under prefix+key (the keys are the JSON
// names, e.g. "bottle/image_auroc" with prefix "bottle/").
func (s Summary) Put(m map[string]float64, prefix string) {
	for _, f := range s.fields() {
		m[prefix+f.key] = *f.v
	}
}

// Set sets the metric named key (a JSON name); it reports whether key
// names a metric.
func (s *Summary) Set(key string, v float64) bool {
	for _, f := range s.fields() {
		if f.key == key {
			*f.v = v
			return true
		}
	}
	return false
}
