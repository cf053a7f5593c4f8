package report

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"os"
)

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"metric": metricText, "count": countText, "typeResult": typeResult, "upper": upper,
}).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.D.Title}}</title>
<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#eee}td.l,th.l{text-align:left}.fail{color:#b00;font-weight:bold}.pass{color:#070;font-weight:bold}.warn{color:#b00}
table.head td{border:none;text-align:left;padding:2px 12px 2px 0}table.head td:first-child{color:#666}
img.o{width:200px}.gallery{display:flex;flex-wrap:wrap;gap:12px}.gallery figure{margin:0}.gallery img{width:384px}.gallery figcaption{font-size:small}</style></head><body>
<h1>{{.D.Title}}</h1>
<table class="head">{{range .D.Header}}<tr><td>{{index . 0}}</td><td>{{index . 1}}</td></tr>
{{end}}</table>
<p><b>{{.D.Counts}}</b></p>
<h2>Per category</h2>
<table><tr><th class="l">category</th><th>threshold</th><th>images</th><th>pass</th><th>fail</th><th>missed defects</th><th>false alarms</th><th>overridden</th></tr>
{{range .D.Sum.Categories}}<tr><td class="l">{{.Category}}</td><td>{{printf "%.4f" .Threshold}}</td><td>{{.Images}}</td><td>{{.Pass}}</td><td>{{.Fail}}</td><td>{{count .Misses}}</td><td>{{count .FalseAlarms}}</td><td>{{.Overridden}}</td></tr>
{{end}}<tr><th class="l">all</th><th></th><th>{{.D.Sum.Images}}</th><th>{{.D.Sum.Pass}}</th><th>{{.D.Sum.Fail}}</th><th>{{count .D.Sum.Misses}}</th><th>{{count .D.Sum.FalseAlarms}}</th><th>{{.D.Sum.Overridden}}</th></tr></table>
{{if .D.Sum.DefectTypes}}<h2>Per defect type</h2>
<table><tr><th class="l">category</th><th class="l">defect type</th><th>images</th><th>pass</th><th>fail</th><th class="l">result</th></tr>
{{range .D.Sum.DefectTypes}}<tr><td class="l">{{.Category}}</td><td class="l">{{.DefectType}}</td><td>{{.Images}}</td><td>{{.Pass}}</td><td>{{.Fail}}</td><td class="l">{{typeResult .}}</td></tr>
{{end}}</table>{{end}}
{{if .D.Metrics}}<h2>Metrics</h2><table><tr><th class="l">category</th><th>image AUROC</th><th>image AP</th><th>image F1max</th><th>pixel AUROC</th><th>pixel AP</th><th>PRO</th></tr>
{{range .D.Metrics}}<tr><td class="l">{{.Name}}</td><td>{{metric .M.ImageAUROC}}</td><td>{{metric .M.ImageAP}}</td><td>{{metric .M.ImageF1Max}}</td><td>{{metric .M.PixelAUROC}}</td><td>{{metric .M.PixelAP}}</td><td>{{metric .M.PRO}}</td></tr>
{{end}}</table>{{if .D.PixelNote}}<p style="font-size:small">n/a pixel metrics: {{.D.PixelNote}}</p>{{end}}{{end}}
{{if .ROC}}<h2>Curves</h2><img alt="ROC" src="{{.ROC}}"> <img alt="PR" src="{{.PR}}">{{end}}
<h2>Colour legend</h2><p><img alt="legend" src="{{.Legend}}"><br><span style="font-size:small">Overlays colour only what is at or above the threshold (the part stays visible below it), from yellow at the threshold to magenta at the top of the scale, in threshold units (1.0 is the threshold); a cyan outline traces the region above the threshold and a green one the ground-truth defect where a mask exists. The banner gives the image's number, verdict, score and threshold.</span></p>
{{if .D.Attention}}<h2>Fails and missed defects ({{len .D.Attention}}, highest score first)</h2><div class="gallery">
{{range .D.Attention}}{{if .Overlay}}<figure><a href="{{.Overlay}}"><img src="{{.Overlay}}" alt="#{{.N}}"></a><figcaption>#{{.N}} {{.Path}}</figcaption></figure>
{{end}}{{end}}</div>{{end}}
<h2>All images</h2><table><tr><th>#</th><th class="l">image</th><th class="l">category</th><th class="l">defect type</th><th class="l">label</th><th>score</th><th>threshold</th><th>verdict</th><th class="l">override</th><th>overlay</th></tr>
{{range .D.Lines}}<tr><td>{{.N}}</td><td class="l">{{.Path}}</td><td class="l">{{.Category}}</td><td class="l">{{.DefectType}}</td><td class="l">{{.Label}}</td><td>{{.Score}}</td><td>{{.Threshold}}</td><td class="{{.Verdict}}">{{upper .Verdict}}{{with .Outcome}} <span class="warn">({{.}})</span>{{end}}</td><td class="l">{{.Override}}</td><td>{{if .Overlay}}<a href="{{.Overlay}}"><img class="o" src="{{.Overlay}}" alt="#{{.N}}"></a>{{end}}</td></tr>
{{end}}</table>
<footer><p style="color:#666;font-size:small">Written by {{.D.Generator}}. Paths are relative to the inspected folder; overlays are in overlays/ beside this file; scores.csv and summary.json hold the same numbers.</p></footer></body></html>
`))

func writeHTML(path string, d *doc) error {
	data := map[string]any{"D": d, "ROC": template.URL(""), "PR": template.URL(""), "Legend": dataURL(d.legend)}
	if len(d.roc) > 0 {
		data["ROC"], data["PR"] = dataURL(d.roc), dataURL(d.pr)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: create %s: %w", path, err)
	}
	if err := page.Execute(f, data); err != nil {
		f.Close()
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report: close %s: %w", path, err)
	}
	return nil
}

// dataURL embeds a PNG this package encoded (safe as a URL).
func dataURL(png []byte) template.URL {
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
}
