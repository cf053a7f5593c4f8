package main

import (
	"context"
	"io"
)

func runBackbone(ctx context.Context, args []string, stdout, stderr io.Writer) error    { return nil }
func runExportModel(ctx context.Context, args []string, stdout, stderr io.Writer) error { return nil }
func runImportModel(ctx context.Context, args []string, stdout, stderr io.Writer) error { return nil }
func runGUI(ctx context.Context, args []string, stdout, stderr io.Writer) error         { return nil }
func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error     { return nil }
