package metrics

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
)

// Reasons a metric is undefined, reported beside it in JSON.
const (
	ReasonOneClass     = "undefined: the test set holds images of one class only (it needs normal and anomalous images)"
	ReasonNoPositives  = "undefined: the test set holds no anomalous images"
	ReasonPixelClasses = "undefined: the masks hold no defect pixels (or no normal pixels)"
)

// Field is one named metric value for MarshalFields.
type Field struct {
	Name   string
	Value  float64
	Reason string // why it is undefined when Value is NaN or ±Inf
}

// MarshalFields writes fields as one JSON object in order. An undefined
// value (NaN, ±Inf: e.g. AUROC of a single-class set) is written as null,
// and its reason under "undefined", instead of failing the whole encoding
// as encoding/json does ("json: unsupported value: NaN").
func MarshalFields(fields []Field) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	undefined := map[string]string{}
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(f.Name))
		b.WriteByte(':')
		if math.IsNaN(f.Value) || math.IsInf(f.Value, 0) {
			b.WriteString("null")
			undefined[f.Name] = f.Reason
			continue
		}
		v, err := json.Marshal(f.Value)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	if len(undefined) > 0 {
		u, err := json.Marshal(undefined)
		if err != nil {
			return nil, err
		}
		b.WriteString(`,"undefined":`)
		b.Write(u)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalFields reads an object written by MarshalFields into the named
// destinations; null (an undefined metric) reads as NaN.
func UnmarshalFields(data []byte, dst map[string]*float64) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	for name, p := range dst {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			if ok {
				*p = math.NaN()
			}
			continue
		}
		if err := json.Unmarshal(v, p); err != nil {
			return err
		}
	}
	return nil
}
