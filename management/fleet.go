package management

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Local is the control plane's host when it runs on the machine that runs
// `rswarm manage`.
const Local = "local"

// Default settings of a fleet file.
const (
	DefaultWorkdir  = "/var/lib/rswarm"
	DefaultSSHPort  = 22
	DefaultUser     = "root"
	DefaultTimeout  = 60 * time.Second
	DefaultFrontend = "127.0.0.1:5001"
	DefaultGM       = "127.0.0.1:5000"
	DefaultBusPort  = 3100
	DefaultDCPort   = 4000
)

// Fleet is a parsed, validated fleet file.
type Fleet struct {
	// ControlPlane says where and how the control plane runs.
	ControlPlane ControlPlane `yaml:"control_plane"`
	// Defaults are applied to every host for the fields the host leaves empty.
	Defaults HostDefaults `yaml:"defaults"`
	// Hosts are the machines of the fleet, in file order.
	Hosts []Host `yaml:"hosts"`
	// Timeout is how long each host may take to come up (default 60s).
	Timeout Duration `yaml:"timeout"`
}

// ControlPlane is the control plane's part of the fleet file.
type ControlPlane struct {
	// Host is "local" or the name of one of Hosts.
	Host string `yaml:"host"`
	// Address is the address the workers reach the control plane at; by
	// default the host's address (127.0.0.1 for local).
	Address string `yaml:"address"`
	// Store is "sqlite" (default, a file in the control plane's workdir) or a
	// mongodb:// URI.
	Store    string `yaml:"store"`
	Strategy string `yaml:"strategy"`
	// Listen are the addresses the control plane listens on.
	Listen Listen `yaml:"listen"`
	// TokenFile is a local file holding the API token; it is copied to the
	// control plane's host and `manage` uses it for its own requests.
	TokenFile string `yaml:"token_file"`
	// Insecure passes --insecure to the control plane and the workers (a
	// bus or API beyond loopback without CURVE keys or a token).
	Insecure bool `yaml:"insecure"`
	// Options are more flags of `rswarm up`, as an argument vector.
	Options []string `yaml:"options"`
	// Workdir is the control plane's directory when it runs locally
	// (default ./.rswarm-fleet); on a host it is the host's workdir.
	Workdir string `yaml:"workdir"`
}

// Listen holds the control plane's listen addresses.
type Listen struct {
	Frontend      string `yaml:"frontend"`
	Globalmanager string `yaml:"globalmanager"`
	// BusPort and DiscoveryPort are the ports of the globalmanager's
	// command bus and discovery's status bus, on Address.
	BusPort       int `yaml:"bus_port"`
	DiscoveryPort int `yaml:"discovery_port"`
}

// HostDefaults are the fields of Host that Defaults may set for every host.
type HostDefaults struct {
	Port                  int      `yaml:"port"`
	User                  string   `yaml:"user"`
	KeyFile               string   `yaml:"key_file"`
	KnownHosts            string   `yaml:"known_hosts"`
	InsecureIgnoreHostKey bool     `yaml:"insecure_ignore_host_key"`
	Workdir               string   `yaml:"workdir"`
	Runtime               string   `yaml:"runtime"`
	Options               []string `yaml:"options"`
}

// Host is one machine of the fleet.
type Host struct {
	// Name names the host in messages, tables and --host flags.
	Name string `yaml:"name"`
	// Address is where the host is reached over SSH, and the address its
	// worker advertises; "local" runs its simulated workers on this
	// machine, without SSH.
	Address               string `yaml:"address"`
	Port                  int    `yaml:"port"`
	User                  string `yaml:"user"`
	KeyFile               string `yaml:"key_file"`
	KnownHosts            string `yaml:"known_hosts"`
	InsecureIgnoreHostKey bool   `yaml:"insecure_ignore_host_key"`
	Workdir               string `yaml:"workdir"`
	// Runtime is docker (default) or sim.
	Runtime string `yaml:"runtime"`
	// Count is how many workers the host runs: 0 or 1 for docker, any
	// number for sim. Default 1; 0 for a host that only runs the control
	// plane.
	Count *int `yaml:"count"`
	// Device is the network interface tc shapes (default eth0).
	Device string `yaml:"device"`
	// Options are more flags of `rswarm worker`, as an argument vector.
	Options []string `yaml:"options"`
}

// Workers is how many workers the host runs.
func (h *Host) Workers() int {
	if h.Count == nil {
		return 1
	}
	return *h.Count
}

// Duration is a time.Duration written as "90s" in the file.
type Duration time.Duration

// UnmarshalYAML reads "90s" or a number of seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if v, err := time.ParseDuration(n.Value); err == nil {
		*d = Duration(v)
		return nil
	}
	if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
		*d = Duration(f * float64(time.Second))
		return nil
	}
	return fmt.Errorf("line %d: %q is not a duration (like 90s)", n.Line, n.Value)
}

// FileError is a fleet file problem, naming the field.
type FileError struct {
	Field string
	Msg   string
}

func (e *FileError) Error() string { return "fleet file: " + e.Field + ": " + e.Msg }

func bad(field, format string, args ...any) error {
	return &FileError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Load reads and parses a fleet file.
func Load(file string) (*Fleet, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("fleet file: %w", err)
	}
	return Parse(b)
}

// Parse reads a fleet file: the YAML form (strict: an unknown key is an
// error naming it) or the original's WorkersInfo.json list
// ([{"address": ..., "user": ...}, ...]), and validates it.
func Parse(b []byte) (*Fleet, error) {
	trim := bytes.TrimSpace(b)
	var f Fleet
	if len(trim) > 0 && trim[0] == '[' {
		fl, err := parseWorkersInfo(trim)
		if err != nil {
			return nil, err
		}
		f = *fl
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, bad("hosts", "the file is empty")
			}
			return nil, fmt.Errorf("fleet file: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
	}
	if err := f.normalise(); err != nil {
		return nil, err
	}
	return &f, nil
}

// workersInfo is one entry of the original's WorkersInfo.json.
type workersInfo struct {
	Address      string `json:"address"`
	User         string `json:"user"`
	LaunchWorker string `json:"launch_worker"`
	KillWorker   string `json:"kill_worker"`
}

// parseWorkersInfo turns the original's list of worker hosts into a fleet
// with a local control plane. Its launch_worker and kill_worker shell
// strings are not run (RSwarm starts and stops its own worker).
func parseWorkersInfo(b []byte) (*Fleet, error) {
	var list []workersInfo
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil {
		return nil, fmt.Errorf("fleet file (WorkersInfo.json form): %w", err)
	}
	f := &Fleet{ControlPlane: ControlPlane{Host: Local}}
	for i, w := range list {
		if w.Address == "" {
			return nil, bad(fmt.Sprintf("[%d].address", i), "missing")
		}
		f.Hosts = append(f.Hosts, Host{Name: w.Address, Address: w.Address, User: w.User})
	}
	return f, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// normalise fills defaults and checks every field.
func (f *Fleet) normalise() error {
	if len(f.Hosts) == 0 && f.ControlPlane.Host != Local && f.ControlPlane.Host != "" {
		return bad("hosts", "no hosts")
	}
	if f.Timeout == 0 {
		f.Timeout = Duration(DefaultTimeout)
	}
	if f.Timeout < 0 {
		return bad("timeout", "must be positive")
	}
	d := f.Defaults
	seen := map[string]bool{}
	for i := range f.Hosts {
		h := &f.Hosts[i]
		field := func(s string) string { return fmt.Sprintf("hosts[%d].%s", i, s) }
		if h.Name == "" {
			h.Name = h.Address
		}
		if !nameRE.MatchString(h.Name) {
			return bad(field("name"), "%q is not a host name (letters, digits, '.', '_', '-')", h.Name)
		}
		if seen[h.Name] {
			return bad(field("name"), "%q appears twice", h.Name)
		}
		seen[h.Name] = true
		if h.Name == Local {
			return bad(field("name"), "%q is reserved for a control plane on this machine", Local)
		}
		if h.Address == Local && h.Runtime != "sim" && firstStr(h.Runtime, d.Runtime) != "sim" {
			return bad(field("address"), "%q (this machine, no SSH) is for simulated workers (runtime: sim)", Local)
		}
		if h.Address == "" {
			return bad(field("address"), "missing")
		}
		if strings.ContainsAny(h.Address, " /@") {
			return bad(field("address"), "%q is not a host name or IP address", h.Address)
		}
		h.Port = firstInt(h.Port, d.Port, DefaultSSHPort)
		if h.Port < 1 || h.Port > 65535 {
			return bad(field("port"), "%d is not a port", h.Port)
		}
		h.User = firstStr(h.User, d.User, DefaultUser)
		h.KeyFile = firstStr(h.KeyFile, d.KeyFile)
		h.KnownHosts = firstStr(h.KnownHosts, d.KnownHosts)
		h.InsecureIgnoreHostKey = h.InsecureIgnoreHostKey || d.InsecureIgnoreHostKey
		if h.KnownHosts == "" && !h.InsecureIgnoreHostKey {
			home, _ := os.UserHomeDir()
			h.KnownHosts = path.Join(home, ".ssh", "known_hosts")
		}
		h.Workdir = firstStr(h.Workdir, d.Workdir, DefaultWorkdir)
		if !path.IsAbs(h.Workdir) {
			return bad(field("workdir"), "%q must be an absolute path", h.Workdir)
		}
		h.Runtime = firstStr(h.Runtime, d.Runtime, "docker")
		if h.Device == "" {
			h.Device = "eth0"
		}
		if h.Options == nil {
			h.Options = d.Options
		}
		switch h.Runtime {
		case "docker":
			if n := h.Workers(); n != 0 && n != 1 {
				return bad(field("count"), "a docker host runs one worker (or 0 for a control-plane-only host), got %d", n)
			}
		case "sim":
			if h.Workers() < 0 {
				return bad(field("count"), "must not be negative")
			}
		default:
			return bad(field("runtime"), "must be docker or sim, got %q", h.Runtime)
		}
		if err := checkOptions(field("options"), h.Options); err != nil {
			return err
		}
	}
	cp := &f.ControlPlane
	if cp.Host == "" {
		cp.Host = Local
	}
	if cp.Host != Local && !seen[cp.Host] {
		return bad("control_plane.host", "%q is neither %q nor the name of a host in hosts", cp.Host, Local)
	}
	if cp.Host == Local {
		wd, err := filepath.Abs(firstStr(cp.Workdir, ".rswarm-fleet"))
		if err != nil {
			return bad("control_plane.workdir", "%v", err)
		}
		cp.Workdir = wd
	} else {
		if cp.Workdir != "" {
			return bad("control_plane.workdir", "only for a local control plane (on a host, the host's workdir is used)")
		}
		cp.Workdir = f.Host(cp.Host).Workdir
	}
	if cp.Address == "" {
		cp.Address = "127.0.0.1"
		if h := f.Host(cp.Host); h != nil {
			cp.Address = h.Address
		}
	}
	switch {
	case cp.Store == "" || cp.Store == "sqlite":
		cp.Store = "sqlite"
	case strings.HasPrefix(cp.Store, "mongodb://") || strings.HasPrefix(cp.Store, "mongodb+srv://"):
	default:
		return bad("control_plane.store", "must be sqlite or a mongodb:// URI, got %q", cp.Store)
	}
	if cp.Strategy == "" {
		cp.Strategy = "best-fit"
	}
	cp.Listen.Frontend = firstStr(cp.Listen.Frontend, DefaultFrontend)
	cp.Listen.Globalmanager = firstStr(cp.Listen.Globalmanager, DefaultGM)
	for _, a := range []struct{ field, v string }{{"control_plane.listen.frontend", cp.Listen.Frontend}, {"control_plane.listen.globalmanager", cp.Listen.Globalmanager}} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return bad(a.field, "%q is not host:port", a.v)
		}
	}
	cp.Listen.BusPort = firstInt(cp.Listen.BusPort, DefaultBusPort)
	cp.Listen.DiscoveryPort = firstInt(cp.Listen.DiscoveryPort, DefaultDCPort)
	if err := checkOptions("control_plane.options", cp.Options); err != nil {
		return err
	}
	return nil
}

// checkOptions refuses options that are not flags: an option vector is
// passed as it is, so it must not smuggle in a positional argument first.
func checkOptions(field string, opts []string) error {
	if len(opts) > 0 && !strings.HasPrefix(opts[0], "-") {
		return bad(field, "%q: options are flags (an argument vector starting with --flag)", opts[0])
	}
	return nil
}

// Host returns the host named name, or nil.
func (f *Fleet) Host(name string) *Host {
	for i := range f.Hosts {
		if f.Hosts[i].Name == name {
			return &f.Hosts[i]
		}
	}
	return nil
}

func firstStr(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

func firstInt(v ...int) int {
	for _, n := range v {
		if n != 0 {
			return n
		}
	}
	return 0
}
