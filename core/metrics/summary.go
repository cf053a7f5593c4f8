package metrics

import "math"

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
// names, e.g. "bottle/image_auroc" with prefix "bottle/"). An undefined
// metric (NaN or ±Inf: a single-class set) is left out: absent, not a value
// JSON cannot hold.
func (s Summary) Put(m map[string]float64, prefix string) {
	for _, f := range s.fields() {
		if !math.IsNaN(*f.v) && !math.IsInf(*f.v, 0) {
			m[prefix+f.key] = *f.v
		}
	}
}

// MarshalJSON writes undefined metrics (NaN: a single-class test set) as
// null with the reason under "undefined", instead of failing the whole
// encoding as encoding/json does ("json: unsupported value: NaN").
func (s Summary) MarshalJSON() ([]byte, error) {
	imageReason := ReasonOneClass
	if math.IsNaN(s.ImageAP) {
		imageReason = ReasonNoPositives
	}
	reason := map[string]string{"image_auroc": ReasonOneClass, "image_ap": imageReason, "image_f1max": imageReason}
	fs := s.fields()
	out := make([]Field, len(fs))
	for i, f := range fs {
		r, ok := reason[f.key]
		if !ok {
			r = ReasonPixelClasses
		}
		out[i] = Field{Name: f.key, Value: *f.v, Reason: r}
	}
	return MarshalFields(out)
}

// UnmarshalJSON reads what MarshalJSON writes (null as NaN).
func (s *Summary) UnmarshalJSON(data []byte) error {
	dst := map[string]*float64{}
	for _, f := range s.fields() {
		dst[f.key] = f.v
	}
	return UnmarshalFields(data, dst)
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
