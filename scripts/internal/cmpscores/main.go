// Command cmpscores compares the per-image scores of two `workstation eval`
// JSON files (the same project data scored on two devices) and prints the
// largest differences; it exits 1 when they disagree beyond a tolerance.
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
)

type evalFile struct {
	Mean   map[string]float64 `json:"mean"`
	Images []struct {
		Path  string  `json:"path"`
		Score float64 `json:"score"`
	} `json:"images"`
}

func load(p string) evalFile {
	b, err := os.ReadFile(p)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var e evalFile
	if err := json.Unmarshal(b, &e); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", p, err)
		os.Exit(2)
	}
	return e
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: cmpscores A.json B.json")
		os.Exit(2)
	}
	a, b := load(os.Args[1]), load(os.Args[2])
	byPath := map[string]float64{}
	for _, im := range b.Images {
		byPath[im.Path] = im.Score
	}
	var maxAbs, maxRel float64
	for _, im := range a.Images {
		s, ok := byPath[im.Path]
		if !ok {
			fmt.Printf("image %s missing from %s\n", im.Path, os.Args[2])
			os.Exit(1)
		}
		d := math.Abs(im.Score - s)
		maxAbs = math.Max(maxAbs, d)
		maxRel = math.Max(maxRel, d/math.Max(1e-6, math.Abs(im.Score)))
	}
	fmt.Printf("%d images: max |Δscore| %.3g, max relative %.3g\n", len(a.Images), maxAbs, maxRel)
	for _, k := range []string{"image_auroc", "pixel_auroc", "pro"} {
		fmt.Printf("  %-12s %s %.4f   %s %.4f\n", k, os.Args[1], a.Mean[k], os.Args[2], b.Mean[k])
	}
	// Training on different devices differs by float rounding that grows
	// over many steps; the models must still agree on the ranking.
	if math.Abs(a.Mean["image_auroc"]-b.Mean["image_auroc"]) > 0.02 {
		fmt.Println("image AUROC differs by more than 0.02")
		os.Exit(1)
	}
}
