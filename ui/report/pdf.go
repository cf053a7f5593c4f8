package report

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	_ "image/png" // overlays are PNG files
	"os"
	"path/filepath"

	"codeberg.org/go-pdf/fpdf"
)

// pdfDoc writes report.pdf with fpdf's core fonts (Helvetica, text in
// cp1252) on A4 paper.
type pdfDoc struct {
	*fpdf.Fpdf
	tr func(string) string
	// w is the width between the margins, bottom the lowest y of content.
	w, bottom float64
}

type pdfCol struct {
	title string
	w     float64
	align string
}

func writePDF(path, dir string, d *doc) error {
	f := fpdf.New("P", "mm", "A4", "")
	p := &pdfDoc{Fpdf: f, tr: f.UnicodeTranslatorFromDescriptor("")}
	f.SetMargins(10, 12, 10)
	f.SetAutoPageBreak(true, 15)
	pw, ph := f.GetPageSize()
	p.w, p.bottom = pw-20, ph-15
	f.SetTitle(d.Title, true)
	f.SetCreator(d.Generator, true)
	f.AliasNbPages("{nb}")
	f.SetFooterFunc(func() {
		f.SetY(-12)
		f.SetFont("Helvetica", "", 7)
		f.SetTextColor(110, 110, 110)
		f.CellFormat(0, 5, p.tr(fmt.Sprintf("%s · %s · page %d of {nb}", d.Title, d.Generator, f.PageNo())), "", 0, "C", false, 0, "")
		f.SetTextColor(0, 0, 0)
	})
	f.AddPage()
	f.SetFont("Helvetica", "B", 16)
	f.MultiCell(0, 8, p.tr(d.Title), "", "L", false)
	f.Ln(2)
	for _, kv := range d.Header {
		f.SetFont("Helvetica", "", 9)
		f.SetTextColor(100, 100, 100)
		f.CellFormat(32, 5, p.tr(kv[0]), "", 0, "L", false, 0, "")
		f.SetTextColor(0, 0, 0)
		f.MultiCell(0, 5, p.tr(kv[1]), "", "L", false)
	}
	f.Ln(2)
	f.SetFont("Helvetica", "B", 11)
	f.MultiCell(0, 6, p.tr(d.Counts), "", "L", false)

	s := d.Sum
	p.heading("Per category")
	rows := make([][]string, 0, len(s.Categories)+1)
	for _, c := range s.Categories {
		rows = append(rows, []string{c.Category, fmt.Sprintf("%.4f", c.Threshold), itoa(c.Images), itoa(c.Pass), itoa(c.Fail),
			countText(c.Misses), countText(c.FalseAlarms), itoa(c.Overridden)})
	}
	rows = append(rows, []string{"all", "", itoa(s.Images), itoa(s.Pass), itoa(s.Fail), countText(s.Misses), countText(s.FalseAlarms), itoa(s.Overridden)})
	p.table([]pdfCol{{"category", 46, "L"}, {"threshold", 22, "R"}, {"images", 18, "R"}, {"pass", 18, "R"}, {"fail", 18, "R"},
		{"missed defects", 24, "R"}, {"false alarms", 22, "R"}, {"overridden", 22, "R"}}, rows, 8)

	if len(s.DefectTypes) > 0 {
		p.heading("Per defect type")
		rows = rows[:0]
		for _, t := range s.DefectTypes {
			rows = append(rows, []string{t.Category, t.DefectType, itoa(t.Images), itoa(t.Pass), itoa(t.Fail), typeResult(t)})
		}
		p.table([]pdfCol{{"category", 40, "L"}, {"defect type", 40, "L"}, {"images", 18, "R"}, {"pass", 18, "R"}, {"fail", 18, "R"},
			{"result", 56, "L"}}, rows, 8)
	}
	if len(d.Metrics) > 0 {
		p.heading("Metrics")
		rows = rows[:0]
		for _, m := range d.Metrics {
			rows = append(rows, []string{m.Name, metricText(m.M.ImageAUROC), metricText(m.M.ImageAP), metricText(m.M.ImageF1Max),
				metricText(m.M.PixelAUROC), metricText(m.M.PixelAP), metricText(m.M.PRO)})
		}
		p.table([]pdfCol{{"category", 46, "L"}, {"image AUROC", 24, "R"}, {"image AP", 24, "R"}, {"image F1max", 24, "R"},
			{"pixel AUROC", 24, "R"}, {"pixel AP", 24, "R"}, {"PRO", 24, "R"}}, rows, 8)
		if d.PixelNote != "" {
			f.SetFont("Helvetica", "", 7.5)
			f.MultiCell(0, 4, p.tr("n/a pixel metrics: "+d.PixelNote), "", "L", false)
		}
	}
	if len(d.roc) > 0 {
		p.heading("Curves")
		p.ensure(70)
		y := f.GetY()
		p.image("roc", d.roc, "PNG", 10, y, 92)
		p.image("pr", d.pr, "PNG", 108, y, 92)
		f.SetY(y + 92*360/480 + 2)
	}
	p.heading("Colour legend")
	p.ensure(20)
	p.image("legend", d.legend, "PNG", 10, f.GetY(), 120)
	f.SetY(f.GetY() + 120*48/640 + 1)
	f.SetFont("Helvetica", "", 8)
	f.MultiCell(0, 4, p.tr("Overlays colour only what is at or above the threshold (the part stays visible below it), from yellow at "+
		"the threshold to magenta at the top of the scale, in threshold units (1.0 is the threshold); a cyan outline traces the region "+
		"above the threshold and a green one the ground-truth defect where a mask exists. Each overlay's banner gives the image's number, "+
		"verdict, score and threshold."), "", "L", false)

	if err := p.gallery(dir, d.Attention); err != nil {
		return err
	}

	f.AddPage()
	p.heading("All images")
	rows = rows[:0]
	for _, l := range d.Lines {
		v := upper(l.Verdict)
		if o := l.Outcome(); o != "" {
			v += " (" + o + ")"
		}
		rows = append(rows, []string{itoa(l.N), l.Path, l.Category, l.DefectType, l.Label, l.Score, v, l.Override})
	}
	p.table([]pdfCol{{"#", 9, "R"}, {"image", 48, "L"}, {"category", 22, "L"}, {"defect type", 22, "L"}, {"label", 11, "L"},
		{"score", 13, "R"}, {"verdict", 22, "L"}, {"override", 43, "L"}}, rows, 7)

	if err := f.OutputFileAndClose(path); err != nil {
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	return nil
}

// gallery shows the fails and misses' overlays, two per row with captions.
func (p *pdfDoc) gallery(dir string, lines []line) error {
	if len(lines) == 0 {
		return nil
	}
	p.AddPage()
	p.heading(fmt.Sprintf("Fails and missed defects (%d, highest score first)", len(lines)))
	const gap = 6.0
	colW := (p.w - gap) / 2
	var row []line
	flush := func() error {
		if len(row) == 0 {
			return nil
		}
		hs := make([]float64, len(row))
		infos := make([]string, len(row))
		hMax := 0.0
		for i, l := range row {
			name, w, h, err := p.overlayImage(dir, l)
			if err != nil {
				return err
			}
			infos[i] = name
			hs[i] = colW * h / w
			hMax = max(hMax, hs[i])
		}
		p.ensure(hMax + 6)
		y := p.GetY()
		for i, l := range row {
			x := 10 + float64(i)*(colW+gap)
			p.ImageOptions(infos[i], x, y, colW, hs[i], false, fpdf.ImageOptions{ImageType: "JPG"}, 0, "")
			p.SetFont("Helvetica", "", 7.5)
			p.SetXY(x, y+hs[i]+0.5)
			p.CellFormat(colW, 4, p.fit(fmt.Sprintf("#%d %s", l.N, l.Path), colW), "", 0, "L", false, 0, "")
		}
		p.SetY(y + hMax + 7)
		row = row[:0]
		return nil
	}
	for _, l := range lines {
		if l.Overlay == "" {
			continue
		}
		row = append(row, l)
		if len(row) == 2 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// overlayImage registers the line's overlay (re-encoded as JPEG to keep the
// PDF small) and returns its name and pixel size.
func (p *pdfDoc) overlayImage(dir string, l line) (string, float64, float64, error) {
	path := filepath.Join(dir, filepath.FromSlash(l.Overlay))
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, 0, fmt.Errorf("report: overlay for the PDF: %w", err)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return "", 0, 0, fmt.Errorf("report: overlay %s: %w", path, err)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		return "", 0, 0, fmt.Errorf("report: overlay %s: %w", path, err)
	}
	p.RegisterImageOptionsReader(l.Overlay, fpdf.ImageOptions{ImageType: "JPG"}, &buf)
	sz := img.Bounds().Size()
	return l.Overlay, float64(sz.X), float64(sz.Y), nil
}

func (p *pdfDoc) image(name string, b []byte, typ string, x, y, w float64) {
	p.RegisterImageOptionsReader(name, fpdf.ImageOptions{ImageType: typ}, bytes.NewReader(b))
	p.ImageOptions(name, x, y, w, 0, false, fpdf.ImageOptions{ImageType: typ}, 0, "")
}

func (p *pdfDoc) heading(s string) {
	p.ensure(16)
	p.Ln(3)
	p.SetFont("Helvetica", "B", 12)
	p.CellFormat(0, 7, p.tr(s), "", 1, "L", false, 0, "")
}

// ensure starts a new page unless h millimetres fit on this one.
func (p *pdfDoc) ensure(h float64) {
	if p.GetY()+h > p.bottom {
		p.AddPage()
	}
}

// table draws a table with a grey header row, repeated on each new page.
func (p *pdfDoc) table(cols []pdfCol, rows [][]string, size float64) {
	const h = 5.0
	head := func() {
		p.SetFont("Helvetica", "B", 8)
		p.SetFillColor(230, 230, 230)
		for _, c := range cols {
			p.CellFormat(c.w, h, p.tr(c.title), "1", 0, c.align, true, 0, "")
		}
		p.Ln(h)
	}
	head()
	for _, r := range rows {
		if p.GetY()+h > p.bottom {
			p.AddPage()
			head()
		}
		p.SetFont("Helvetica", "", size)
		for i, c := range cols {
			p.CellFormat(c.w, h, p.fit(r[i], c.w), "1", 0, c.align, false, 0, "")
		}
		p.Ln(h)
	}
}

// fit translates s and shortens it from the left with "..." until it fits
// in w millimetres (paths keep their informative end).
func (p *pdfDoc) fit(s string, w float64) string {
	t := p.tr(s)
	if p.GetStringWidth(t) <= w-2 {
		return t
	}
	r := []rune(s)
	for len(r) > 1 {
		r = r[1:]
		t = p.tr("..." + string(r))
		if p.GetStringWidth(t) <= w-2 {
			return t
		}
	}
	return t
}

func itoa(n int) string { return fmt.Sprint(n) }
