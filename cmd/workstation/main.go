// Command workstation is the DMAD inspection workstation: with no
// arguments it opens the desktop application; its subcommands train,
// evaluate, inspect and benchmark from the command line.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/dmad/workstation"
	_ "github.com/dmad/workstation/cmd/workstation/internal/localefix" // before Fyne reads $LANG
)

// Exit codes scripts can rely on.
const (
	exitOK       = 0
	exitError    = 1 // the work failed (bad input, I/O, engine error)
	exitUsage    = 2 // wrong flags or arguments
	exitCanceled = 130
)

// usageError marks errors in how the command was called.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"train", "train a unified model on a dataset and store it in a project", runTrain},
		{"eval", "evaluate the project's active model on a dataset's test images", runEval},
		{"inspect", "score a folder of images: scores.csv, overlays, summary", runInspect},
		{"report", "combine sharded inspection outputs: report merge --out DIR SHARD_DIR...", runReport},
		{"watch", "live inspection: score new images in a folder as they arrive", runWatch},
		{"bench", "run the whole protocol (PatchCore, DMAD unsup., DMAD semi) and write JSON", runBench},
		{"backbone", "manage backbones: list, import, pull, show, rm", runBackbone},
		{"export-model", "write a project's model to one file", runExportModel},
		{"import-model", "add a model file to a project", runImportModel},
		{"check", "verify a project file completely (pages, structure, every checksum)", runCheck},
		{"salvage", "copy what is readable from a damaged project into a new one", runSalvage},
		{"images", "manage a project's images: rm", runImages},
		{"gui", "open the desktop application (the default)", runGUI},
		{"version", "print versions", runVersion},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) == 0 {
		args = []string{"gui"}
	}
	name := args[0]
	switch name {
	case "-h", "--help", "-help", "help":
		printUsage(stdout)
		return exitOK
	case "--version", "-version":
		fmt.Fprintf(stdout, "workstation %s\n", workstation.Version())
		return exitOK
	}
	for _, c := range commands() {
		if c.name == name {
			err := c.run(ctx, args[1:], stdout, stderr)
			return exitCode(err, name, stderr)
		}
	}
	fmt.Fprintf(stderr, "workstation: unknown command %q\n\n", name)
	printUsage(stderr)
	return exitUsage
}

func exitCode(err error, name string, stderr io.Writer) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "workstation %s: %v\nRun 'workstation %s --help' for usage.\n", name, err, name)
		return exitUsage
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "workstation %s: canceled\n", name)
		return exitCanceled
	}
	fmt.Fprintf(stderr, "workstation %s: %v\n", name, err)
	return exitError
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "DMAD inspection workstation: unified anomaly detection with dual memory banks.")
	fmt.Fprintln(w, "\nUsage: workstation [command] [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nWith no command the desktop application opens. 'workstation COMMAND --help' explains each flag;")
	fmt.Fprintln(w, "'workstation --version' prints the version. Projects are "+workstation.ProjectExt+" files, exported models")
	fmt.Fprintln(w, workstation.ModelExt+" ("+workstation.LegacyExt+" files of earlier versions still open and import).")
	fmt.Fprintln(w, "\nExamples:")
	fmt.Fprintln(w, "  workstation train --project line1"+workstation.ProjectExt+" --data /data/mvtec")
	fmt.Fprintln(w, "  workstation train --project line1"+workstation.ProjectExt+" --data photos/good --label good --category bottle")
	fmt.Fprintln(w, "  workstation inspect --project line1"+workstation.ProjectExt+" --input /data/incoming --out /reports/today")
	fmt.Fprintln(w, "\nExit codes: 0 ok, 1 the work failed, 2 usage error, 130 canceled.")
}
