package workstation

import (
	"regexp"
	"testing"
)

func TestMetadata(t *testing.T) {
	a, err := Metadata()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(a.Version) {
		t.Errorf("FyneApp.toml Version %q is not MAJOR.MINOR.PATCH (bundle names and fyne package need one)", a.Version)
	}
	if a.ID != "io.github.dmad.workstation" || a.Name == "" || a.Icon == "" {
		t.Errorf("FyneApp.toml details incomplete: %+v", a)
	}
	if Version() != a.Version || NameVersion() != a.Name+" "+a.Version {
		t.Errorf("Version()=%q NameVersion()=%q disagree with %+v", Version(), NameVersion(), a)
	}
}
