package main

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/rswarm/rswarm"

// roles are the top-level folders that each run as their own process; one
// role reaches another over the bus or REST, never by importing it.
var roles = []string{"frontend", "jobmanager", "globalmanager", "discovery", "worker", "stressclient", "management"}

// adapters may import the driver of an outside system; nothing else may.
var adapters = map[string][]string{
	"github.com/docker/docker":    {"engine"},
	"go.mongodb.org/mongo-driver": {"store"},
	"github.com/pebbe/zmq4":       {"bus"},
}

// shielded are packages that reach an outside system only through
// interfaces handed to them, and so never import its adapter: the
// globalmanager's links to workers are given to it, and the errors it tests
// for are api's.
var shielded = map[string][]string{
	"globalmanager": {"bus"},
}

type listedPackage struct {
	ImportPath string
	Imports    []string
}

// TestImportsKeepTheTreesShape fails when a package imports one it must not:
// roles never import roles; only engine, store and bus import Docker's,
// MongoDB's and ZeroMQ's clients; placement imports nothing of the project;
// the globalmanager does not import the bus.
// Test files are not checked (the store's tests import FerretDB, for one).
func TestImportsKeepTheTreesShape(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH")
	}
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; expected the whole module", len(pkgs))
	}
	for _, p := range pkgs {
		for _, v := range importViolations(p) {
			t.Error(v)
		}
	}
}

// importViolations lists what p imports against the rules above.
func importViolations(p listedPackage) []string {
	rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
	top, _, _ := strings.Cut(rel, "/")
	var bad []string
	for _, imp := range p.Imports {
		irel, ours := strings.CutPrefix(imp, module+"/")
		itop, _, _ := strings.Cut(irel, "/")
		switch {
		case ours && top == "placement":
			bad = append(bad, rel+" imports "+irel+": placement is pure and imports nothing of the project")
		case ours && slices.Contains(roles, top) && slices.Contains(roles, itop) && top != itop:
			bad = append(bad, rel+" imports "+irel+": a role never imports another role")
		case ours && slices.Contains(shielded[top], itop):
			bad = append(bad, rel+" imports "+irel+": "+top+" reaches "+itop+" only through the interfaces it is given")
		}
		for prefix, allowed := range adapters {
			if (imp == prefix || strings.HasPrefix(imp, prefix+"/")) && !slices.Contains(allowed, top) {
				bad = append(bad, rel+" imports "+imp+": only "+strings.Join(allowed, ", ")+" may")
			}
		}
	}
	return bad
}

func TestImportViolationsTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		pkg  listedPackage
		want int
	}{
		{"engine may use docker", listedPackage{module + "/engine", []string{"github.com/docker/docker/client"}}, 0},
		{"worker may not use docker", listedPackage{module + "/worker", []string{"github.com/docker/docker/client"}}, 1},
		{"a role may use api", listedPackage{module + "/frontend", []string{module + "/api"}}, 0},
		{"a role importing a role", listedPackage{module + "/frontend", []string{module + "/jobmanager"}}, 1},
		{"placement importing api", listedPackage{module + "/placement", []string{module + "/api"}}, 1},
		{"placement importing the standard library", listedPackage{module + "/placement", []string{"sort"}}, 0},
		{"store may use mongo", listedPackage{module + "/store", []string{"go.mongodb.org/mongo-driver/v2/mongo"}}, 0},
		{"report may not use zmq", listedPackage{module + "/report", []string{"github.com/pebbe/zmq4"}}, 1},
		{"globalmanager may not import bus", listedPackage{module + "/globalmanager", []string{module + "/bus", module + "/api"}}, 1},
		{"cmd wires roles together", listedPackage{module + "/cmd/rswarm", []string{module + "/frontend", module + "/worker"}}, 0},
	} {
		if got := importViolations(tc.pkg); len(got) != tc.want {
			t.Errorf("%s: %d violations %q, want %d", tc.name, len(got), got, tc.want)
		}
	}
}
