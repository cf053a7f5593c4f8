// Package uitest holds test doubles of ui.Engine and ui.Project: an
// in-memory project and a toy engine that scores images by local contrast.
// They exist for the ui tests and the screenshot demo; the real application
// wires core/pipeline and storage instead. Never use them in production.
package uitest

import (
	"context"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // decode JPEG test images
	"image/png"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/review"
	"github.com/dmad/workstation/ui"
	"github.com/dmad/workstation/ui/internal/curve"
)

// Project is an in-memory ui.Project. It is safe for concurrent use.
type Project struct {
	name, path string

	mu       sync.Mutex
	images   []ui.ImageRecord
	masks    map[string]*image.Gray
	settings ui.Settings
	models   []ui.ModelInfo
	runs     []ui.Run
	closed   bool
	// thresholds and overrides by model ID (ui.Reviewer).
	thresholds map[string]review.Thresholds
	overrides  map[string]map[string]ui.Override
}

// DefaultThreshold is the toy engine's decision threshold of every model.
const DefaultThreshold = 0.5

// Thresholds implements ui.Reviewer: DefaultThreshold until set.
func (p *Project) Thresholds(modelID string) (review.Thresholds, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.thresholds[modelID]; ok {
		return t.Clone(), nil
	}
	return review.Thresholds{Global: DefaultThreshold}, nil
}

// SetThresholds implements ui.Reviewer.
func (p *Project) SetThresholds(modelID string, t review.Thresholds) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.thresholds == nil {
		p.thresholds = map[string]review.Thresholds{}
	}
	p.thresholds[modelID] = t.Clone()
	return nil
}

// Overrides implements ui.Reviewer.
func (p *Project) Overrides(modelID string) (map[string]ui.Override, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.overrides[modelID]), nil
}

// SetOverride implements ui.Reviewer; Who defaults to "tester".
func (p *Project) SetOverride(modelID string, o ui.Override) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if o.Who == "" {
		o.Who = "tester"
	}
	if o.When.IsZero() {
		o.When = time.Now()
	}
	if p.overrides == nil {
		p.overrides = map[string]map[string]ui.Override{}
	}
	if p.overrides[modelID] == nil {
		p.overrides[modelID] = map[string]ui.Override{}
	}
	p.overrides[modelID][o.Image] = o
	return nil
}

// ClearOverride implements ui.Reviewer.
func (p *Project) ClearOverride(modelID, image string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.overrides[modelID], image)
	return nil
}

// NewProject returns an empty project.
func NewProject(path, name string) *Project {
	return &Project{name: name, path: path, masks: map[string]*image.Gray{}, settings: ui.DefaultSettings()}
}

// Name implements ui.Project.
func (p *Project) Name() string { return p.name }

// Path implements ui.Project.
func (p *Project) Path() string { return p.path }

// Images implements ui.Project.
func (p *Project) Images() ([]ui.ImageRecord, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.images), nil
}

// AddImages implements ui.Project; masks named by MaskPath are read.
func (p *Project) AddImages(ctx context.Context, recs []ui.ImageRecord) ([]ui.ImageRecord, error) {
	out := make([]ui.ImageRecord, len(recs))
	for i, r := range recs {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("add images: %w", err)
		}
		var m *image.Gray
		if r.MaskPath != "" {
			var err error
			if m, err = loadMask(r.MaskPath); err != nil {
				return nil, err
			}
		}
		p.mu.Lock()
		r.ID = strconv.Itoa(len(p.images) + 1)
		if m != nil {
			p.masks[r.ID] = m
			r.HasMask = true
		}
		p.images = append(p.images, r)
		p.mu.Unlock()
		out[i] = r
	}
	return out, nil
}

func loadMask(path string) (*image.Gray, error) {
	img, err := decodeFile(path)
	if err != nil {
		return nil, fmt.Errorf("load mask %s: %w", path, err)
	}
	b := img.Bounds()
	m := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := range b.Dy() {
		for x := range b.Dx() {
			if c := color.GrayModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.Gray); c.Y >= 128 {
				m.Pix[y*m.Stride+x] = 255
			}
		}
	}
	return m, nil
}

func decodeFile(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	return img, err
}

// RemoveImage implements ui.ImageRemover.
func (p *Project) RemoveImage(id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, err := p.find(id)
	if err != nil {
		return err
	}
	p.images = append(p.images[:i], p.images[i+1:]...)
	delete(p.masks, id)
	return nil
}

func (p *Project) find(id string) (int, error) {
	for i := range p.images {
		if p.images[i].ID == id {
			return i, nil
		}
	}
	return -1, fmt.Errorf("image %q not in project %s", id, p.name)
}

// LoadImage implements ui.Project.
func (p *Project) LoadImage(id string) (image.Image, error) {
	p.mu.Lock()
	i, err := p.find(id)
	var path string
	if err == nil {
		path = p.images[i].Path
	}
	p.mu.Unlock()
	if err != nil {
		return nil, err
	}
	img, err := decodeFile(path)
	if err != nil {
		return nil, fmt.Errorf("load image %s: %w", path, err)
	}
	return img, nil
}

// Mask implements ui.Project.
func (p *Project) Mask(id string) (*image.Gray, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.masks[id]
	if !ok {
		return nil, ui.ErrNoMask
	}
	c := *m
	c.Pix = slices.Clone(m.Pix)
	return &c, nil
}

// SaveMask implements ui.Project.
func (p *Project) SaveMask(id string, m *image.Gray) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, err := p.find(id)
	if err != nil {
		return err
	}
	if m == nil {
		delete(p.masks, id)
		p.images[i].HasMask = false
		return nil
	}
	c := *m
	c.Pix = slices.Clone(m.Pix)
	p.masks[id] = &c
	p.images[i].HasMask = true
	return nil
}

// SetSeenAnomaly implements ui.Project.
func (p *Project) SetSeenAnomaly(id string, seen bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, err := p.find(id)
	if err != nil {
		return err
	}
	p.images[i].SeenAnomaly = seen
	return nil
}

// Settings implements ui.Project.
func (p *Project) Settings() (ui.Settings, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.settings, nil
}

// SaveSettings implements ui.Project.
func (p *Project) SaveSettings(s ui.Settings) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.settings = s
	return nil
}

// Models implements ui.Project.
func (p *Project) Models() ([]ui.ModelInfo, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.models), nil
}

// AddModel records a trained model, as Engine.Train does, and returns it
// with its Version.
func (p *Project) AddModel(m ui.ModelInfo) ui.ModelInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	m.Version = len(p.models) + 1
	p.models = append(p.models, m)
	return m
}

// Runs implements ui.Project.
func (p *Project) Runs() ([]ui.Run, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.runs), nil
}

// SaveRun implements ui.Project.
func (p *Project) SaveRun(r ui.Run) (ui.Run, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.ID == "" {
		r.ID = "run" + strconv.Itoa(len(p.runs)+1)
	}
	p.runs = append(p.runs, r)
	return r, nil
}

// Close implements ui.Project.
func (p *Project) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return nil
}

// Closed reports whether Close was called.
func (p *Project) Closed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Engine is a toy ui.Engine: training only reports progress, scoring rates
// each cell of an 8×8 grid by how far its mean brightness is from the
// image's median cell.
type Engine struct {
	// EpochDelay slows Train down per epoch (for cancellation tests and demos).
	EpochDelay time.Duration

	mu        sync.Mutex
	lastTrain ui.TrainRequest
	lastScore ui.ScoreRequest
}

// LastScore returns the last request Score received.
func (e *Engine) LastScore() ui.ScoreRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastScore
}

// LastTrain returns the last request Train received.
func (e *Engine) LastTrain() ui.TrainRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastTrain
}

// Detect implements ui.Engine.
func (e *Engine) Detect() ui.DeviceInfo {
	return ui.DeviceInfo{Providers: []string{"cpu"}, Description: "CPU (test double)"}
}

// ScanFolder implements ui.Engine: MVTec AD layout
// (<cat>/{train,test}/<type>/*.png, <cat>/ground_truth/<type>/<name>_mask.png)
// or a plain folder.
func (e *Engine) ScanFolder(ctx context.Context, dir string) (ui.FolderScan, error) {
	var recs []ui.ImageRecord
	mvtec := false
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !dataset.IsImage(d.Name()) {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) == 4 && (parts[1] == "train" || parts[1] == "test") {
			mvtec = true
			r := ui.ImageRecord{Path: path, Category: parts[0], Split: ui.Split(parts[1]), Label: ui.LabelGood}
			if parts[2] != "good" {
				r.Label, r.DefectType = ui.LabelDefect, parts[2]
				base := strings.TrimSuffix(parts[3], filepath.Ext(parts[3]))
				mp := filepath.Join(dir, parts[0], "ground_truth", parts[2], base+"_mask.png")
				if _, err := os.Stat(mp); err == nil {
					r.MaskPath = mp
				}
			}
			recs = append(recs, r)
			return nil
		}
		if slices.Contains(parts, "ground_truth") {
			return nil
		}
		recs = append(recs, ui.ImageRecord{Path: path})
		return nil
	})
	if err != nil {
		return ui.FolderScan{}, fmt.Errorf("scan %s: %w", dir, err)
	}
	if len(recs) == 0 {
		return ui.FolderScan{}, fmt.Errorf("scan %s: no images found", dir)
	}
	layout := "plain"
	if mvtec {
		layout = "mvtec"
		recs = slices.DeleteFunc(recs, func(r ui.ImageRecord) bool { return r.Category == "" })
	}
	return ui.FolderScan{Layout: layout, Images: recs}, nil
}

// Train implements ui.Engine with a synthetic, decreasing loss. Like the
// real engine it stores the model in the project (which must be a *Project)
// and returns it with its Version.
func (e *Engine) Train(ctx context.Context, req ui.TrainRequest, progress func(ui.Progress)) (ui.ModelInfo, error) {
	e.mu.Lock()
	e.lastTrain = req
	e.mu.Unlock()
	p, ok := req.Project.(*Project)
	if !ok {
		return ui.ModelInfo{}, fmt.Errorf("train: the fake engine cannot store a model in a %T", req.Project)
	}
	imgs, err := p.Images()
	if err != nil {
		return ui.ModelInfo{}, err
	}
	cats := map[string]bool{}
	seen := 0
	for _, r := range imgs {
		cats[r.Category] = true
		if r.SeenAnomaly && req.Regime == ui.SemiSupervised {
			seen++
		}
	}
	if len(imgs) == 0 {
		return ui.ModelInfo{}, fmt.Errorf("train: project %s has no images; import a folder first", req.Project.Name())
	}
	epochs := max(1, req.Epochs)
	start := time.Now()
	loss := 0.0
	for ep := 1; ep <= epochs; ep++ {
		select {
		case <-ctx.Done():
			return ui.ModelInfo{}, fmt.Errorf("train: %w", ctx.Err())
		case <-time.After(e.EpochDelay):
		}
		loss = 1/float64(ep) + 0.05
		el := time.Since(start)
		progress(ui.Progress{Stage: "training", Epoch: ep, Epochs: epochs, Loss: loss,
			ETA: el / time.Duration(ep) * time.Duration(epochs-ep), Fraction: float64(ep) / float64(epochs)})
	}
	names := make([]string, 0, len(cats))
	for c := range cats {
		names = append(names, c)
	}
	slices.Sort(names)
	return p.AddModel(ui.ModelInfo{ID: fmt.Sprintf("fake-%d", time.Now().UnixNano()), Created: time.Now(), Regime: req.Regime,
		Categories: names, Epochs: epochs, InputSize: req.InputSize, SeenAnomalies: seen, FinalLoss: loss}), nil
}

// Score implements ui.Engine.
func (e *Engine) Score(ctx context.Context, req ui.ScoreRequest, progress func(ui.Progress)) (ui.Run, error) {
	e.mu.Lock()
	e.lastScore = req
	e.mu.Unlock()
	var recs []ui.ImageRecord
	if req.Dir != "" {
		scan, err := e.ScanFolder(ctx, req.Dir)
		if err != nil {
			return ui.Run{}, err
		}
		recs = scan.Images
	} else {
		all, err := req.Project.Images()
		if err != nil {
			return ui.Run{}, err
		}
		for _, r := range all {
			if r.Split == ui.SplitTest {
				recs = append(recs, r)
			}
		}
	}
	run := ui.Run{Name: "evaluation", ModelID: req.ModelID, Created: time.Now(), PerCategory: map[string]ui.Metrics{}, Threshold: DefaultThreshold}
	if req.Dir != "" {
		run.Name = "batch " + filepath.Base(req.Dir)
	}
	for i, r := range recs {
		if err := ctx.Err(); err != nil {
			return ui.Run{}, fmt.Errorf("score: %w", err)
		}
		img, err := decodeFile(r.Path)
		if err != nil {
			return ui.Run{}, fmt.Errorf("score: load %s: %w", r.Path, err)
		}
		m := contrastMap(img, 8)
		s := 0.0
		for _, v := range m {
			s = math.Max(s, float64(v))
		}
		run.Images = append(run.Images, ui.ScoredImage{ImageID: r.ID, Path: r.Path, Category: r.Category, Score: s,
			Label: r.Label, Map: m, MapW: 8, MapH: 8, MaskPath: r.MaskPath})
		progress(ui.Progress{Stage: "scoring", Step: i + 1, Steps: len(recs), Fraction: float64(i+1) / float64(len(recs))})
	}
	byCat := map[string][]ui.ScoredImage{}
	for _, s := range run.Images {
		if s.Label != ui.LabelUnknown {
			byCat[s.Category] = append(byCat[s.Category], s)
		}
	}
	for c, ss := range byCat {
		scores := make([]float64, len(ss))
		labels := make([]bool, len(ss))
		for i, s := range ss {
			scores[i], labels[i] = s.Score, s.Label == ui.LabelDefect
		}
		fpr, tpr, _ := curve.ROC(scores, labels)
		rec, prec := curve.PR(scores, labels)
		run.PerCategory[c] = ui.Metrics{ImageAUROC: curve.AUC(fpr, tpr), ImageAP: curve.AUC(rec, prec)}
	}
	return run, nil
}

// contrastMap returns an n×n map: |cell mean − median cell mean| / 64.
func contrastMap(img image.Image, n int) []float32 {
	b := img.Bounds()
	sums := make([]float64, n*n)
	counts := make([]float64, n*n)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			g := color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y
			c := (y-b.Min.Y)*n/b.Dy()*n + (x-b.Min.X)*n/b.Dx()
			sums[c] += float64(g)
			counts[c]++
		}
	}
	means := make([]float64, n*n)
	for i := range means {
		means[i] = sums[i] / math.Max(1, counts[i])
	}
	sorted := slices.Clone(means)
	slices.Sort(sorted)
	med := sorted[len(sorted)/2]
	m := make([]float32, n*n)
	for i, v := range means {
		m[i] = float32(math.Abs(v-med) / 64)
	}
	return m
}

// GenerateDemo implements ui.Engine: two categories ("disc", "tile") of
// 96×96 noisy PNGs, bright blobs as defects, with masks, in MVTec layout.
func (e *Engine) GenerateDemo(ctx context.Context, dir string) error {
	return WriteDataset(ctx, dir, []string{"disc", "tile"}, 8, 4, 4, 96)
}

// WriteDataset writes an MVTec-layout dataset: per category nTrain good
// training images, nGood good and nBad defective ("blob") test images with
// masks, size×size pixels.
func WriteDataset(ctx context.Context, dir string, cats []string, nTrain, nGood, nBad, size int) error {
	rng := rand.New(rand.NewPCG(1, 2))
	for ci, cat := range cats {
		write := func(sub string, i int, defect bool) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			img := image.NewRGBA(image.Rect(0, 0, size, size))
			base := 90 + 50*ci
			for y := range size {
				for x := range size {
					v := uint8(base + rng.IntN(20))
					if ci%2 == 1 && (x/12+y/12)%2 == 0 {
						v -= 30
					}
					img.SetRGBA(x, y, color.RGBA{v, v, uint8(int(v) * 9 / 10), 255})
				}
			}
			name := fmt.Sprintf("%03d.png", i)
			if defect {
				mask := image.NewGray(img.Bounds())
				cx, cy, r := size/4+rng.IntN(size/2), size/4+rng.IntN(size/2), size/12+rng.IntN(size/10)
				for y := range size {
					for x := range size {
						if (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r {
							img.SetRGBA(x, y, color.RGBA{250, 240, 120, 255})
							mask.SetGray(x, y, color.Gray{255})
						}
					}
				}
				if err := savePNG(filepath.Join(dir, cat, "ground_truth", "blob", fmt.Sprintf("%03d_mask.png", i)), mask); err != nil {
					return err
				}
			}
			return savePNG(filepath.Join(dir, cat, sub, name), img)
		}
		for i := range nTrain {
			if err := write(filepath.Join("train", "good"), i, false); err != nil {
				return err
			}
		}
		for i := range nGood {
			if err := write(filepath.Join("test", "good"), i, false); err != nil {
				return err
			}
		}
		for i := range nBad {
			if err := write(filepath.Join("test", "blob"), i, true); err != nil {
				return err
			}
		}
	}
	return nil
}

func savePNG(path string, img image.Image) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
