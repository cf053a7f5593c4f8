// Command synthdata writes the synthetic MVTec-layout dataset used by the
// scripts: synthdata DIR [CATEGORIES] [SIZE].
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/dmad/workstation/core/synth"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: synthdata DIR [CATEGORIES] [SIZE]")
		os.Exit(2)
	}
	opts := synth.DatasetOptions{Categories: 3, TrainPerCategory: 40, TestGoodPerCategory: 10, TestDefectPerCategory: 12, Size: 160, Seed: 1}
	if len(os.Args) > 2 {
		opts.Categories, _ = strconv.Atoi(os.Args[2])
	}
	if len(os.Args) > 3 {
		opts.Size, _ = strconv.Atoi(os.Args[3])
	}
	if err := synth.WriteDataset(os.Args[1], opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
