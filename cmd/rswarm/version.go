package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// rswarm version (and rswarm --version): what was built, from the build
// information the Go toolchain records in the binary.

// buildVersion describes the binary: its module version ("(devel)" when
// built from a checkout), the VCS commit (with "+dirty" for uncommitted
// changes) and time, and the Go version.
type buildVersion struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Time      string `json:"commit_time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform,omitempty"`
}

func readBuildVersion(info *debug.BuildInfo, ok bool) buildVersion {
	v := buildVersion{Version: "unknown", GoVersion: "unknown"}
	if !ok || info == nil {
		return v
	}
	v.Version, v.GoVersion = info.Main.Version, info.GoVersion
	if v.Version == "" {
		v.Version = "(devel)"
	}
	var goos, goarch string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
	}
	if goos != "" {
		v.Platform = goos + "/" + goarch
	}
	return v
}

// String is the one line `rswarm --version` prints after "rswarm version".
func (v buildVersion) String() string {
	parts := []string{v.Version}
	if v.Commit != "" {
		c := v.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		if v.Modified {
			c += "+dirty"
		}
		parts = append(parts, "commit "+c)
	}
	if v.Time != "" {
		parts = append(parts, v.Time)
	}
	parts = append(parts, v.GoVersion)
	if v.Platform != "" {
		parts = append(parts, v.Platform)
	}
	return strings.Join(parts, ", ")
}

func currentVersion() buildVersion { return readBuildVersion(debug.ReadBuildInfo()) }

func init() {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "print the version, the commit it was built from and the Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := currentVersion()
			switch output {
			case "json":
				cf := clientFlags{stdout: cmd.OutOrStdout()}
				return cf.printJSON(v)
			case "table":
			default:
				return fmt.Errorf("--output must be table or json, got %q", output)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Version:    %s\n", v.Version)
			if v.Commit != "" {
				dirty := ""
				if v.Modified {
					dirty = " (with uncommitted changes)"
				}
				fmt.Fprintf(w, "Commit:     %s%s\n", v.Commit, dirty)
			}
			if v.Time != "" {
				fmt.Fprintf(w, "Built from: a commit of %s\n", v.Time)
			}
			fmt.Fprintf(w, "Go:         %s\n", v.GoVersion)
			if v.Platform != "" {
				fmt.Fprintf(w, "Platform:   %s\n", v.Platform)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	addCommand(cmd)
}
