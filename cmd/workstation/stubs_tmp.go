package main

import (
	"context"
	"io"
)

func runGUI(ctx context.Context, args []string, stdout, stderr io.Writer) error { return nil }
