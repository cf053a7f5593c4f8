package progress

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// stageConstants parses src and returns the value of every constant it
// declares with type Stage, so a stage added later is checked too.
func stageConstants(t *testing.T, file string, src any) map[string]Stage {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, src, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	out := map[string]Stage{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Stage" {
				continue
			}
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s: Stage constant %s is not a string literal", file, name.Name)
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatalf("%s: %s: %v", file, name.Name, err)
				}
				out[name.Name] = Stage(v)
			}
		}
	}
	return out
}

// unlabelled returns the names of stages without a user-facing label.
func unlabelled(stages map[string]Stage) []string {
	var out []string
	for name, s := range stages {
		if !s.HasLabel() {
			out = append(out, name)
		}
	}
	return out
}

func TestEveryStageHasALabel(t *testing.T) {
	stages := stageConstants(t, "progress.go", nil)
	if len(stages) < 14 {
		t.Fatalf("found %d Stage constants in progress.go, want at least 14: is the parser still finding them?", len(stages))
	}
	if missing := unlabelled(stages); len(missing) > 0 {
		t.Errorf("Stage constants without a user-facing label (add them to Stage.label): %v", missing)
	}
	seen := map[string]string{}
	for name, s := range stages {
		l := s.Label()
		if l == string(s) {
			t.Errorf("%s: label %q is the short name", name, l)
		}
		if other, dup := seen[l]; dup {
			t.Errorf("%s and %s share the label %q", name, other, l)
		}
		seen[l] = name
	}
}

// TestANewStageWithoutALabelIsCaught runs the same check on a source that
// adds a stage and no label: it must be reported.
func TestANewStageWithoutALabelIsCaught(t *testing.T) {
	src := `package progress
const (
	Bank Stage = "bank"
	Polish Stage = "polish"
)`
	got := unlabelled(stageConstants(t, "extra.go", src))
	if len(got) != 1 || got[0] != "Polish" {
		t.Errorf("unlabelled = %v, want [Polish]", got)
	}
}

func TestLabel(t *testing.T) {
	tests := []struct {
		stage Stage
		want  string
	}{
		{Bank, "building the normal memory"},
		{AnomalyBank, "building the defect memory"},
		{Train, "training the scorer"},
		{Stage("from-an-old-log"), "from-an-old-log"},
	}
	for _, tt := range tests {
		if got := tt.stage.Label(); got != tt.want {
			t.Errorf("%q.Label() = %q, want %q", tt.stage, got, tt.want)
		}
	}
	if Stage("from-an-old-log").HasLabel() {
		t.Error("an unknown stage reports a label")
	}
}
