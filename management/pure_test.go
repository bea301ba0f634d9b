package management

import (
	"bytes"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseFleet(t *testing.T) {
	const good = `
control_plane:
  host: n1
  insecure: true
defaults:
  key_file: /k
  known_hosts: /kh
hosts:
  - {name: n1, address: 10.0.0.1, count: 0}
  - {name: n2, address: 10.0.0.2, port: 2222, user: ops, workdir: /srv/rs, options: [--heartbeat, 2s]}
  - {name: n3, address: 10.0.0.3, runtime: sim, count: 500}
timeout: 90s
`
	f, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if f.ControlPlane.Address != "10.0.0.1" || f.ControlPlane.Workdir != DefaultWorkdir || f.ControlPlane.Store != "sqlite" {
		t.Errorf("control plane defaults: %+v", f.ControlPlane)
	}
	if f.ControlPlane.Listen.BusPort != 3100 || f.ControlPlane.Listen.Frontend != DefaultFrontend {
		t.Errorf("listen defaults: %+v", f.ControlPlane.Listen)
	}
	if time.Duration(f.Timeout) != 90*time.Second {
		t.Errorf("timeout %v", time.Duration(f.Timeout))
	}
	n2 := f.Host("n2")
	if n2.Port != 2222 || n2.User != "ops" || n2.KeyFile != "/k" || n2.KnownHosts != "/kh" || n2.Workdir != "/srv/rs" || n2.Workers() != 1 || n2.Device != "eth0" {
		t.Errorf("n2: %+v", n2)
	}
	if n1 := f.Host("n1"); n1.Port != 22 || n1.User != "root" || n1.Workers() != 0 {
		t.Errorf("n1: %+v", n1)
	}
	if n3 := f.Host("n3"); n3.Runtime != "sim" || n3.Workers() != 500 {
		t.Errorf("n3: %+v", n3)
	}
}

func TestParseFleetErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string
	}{
		{"unknown key names it", "hosts:\n  - {name: a, address: b, adress: c}\n", "field adress not found"},
		{"unknown top key", "contol_plane: {}\nhosts: [{address: a}]\n", "field contol_plane not found"},
		{"no address", "hosts:\n  - {name: a}\n", "hosts[0].address: missing"},
		{"twice", "hosts:\n  - {name: a, address: x}\n  - {name: a, address: y}\n", `hosts[1].name: "a" appears twice`},
		{"docker count", "hosts:\n  - {address: x, count: 3}\n", "hosts[0].count: a docker host runs one worker"},
		{"runtime", "hosts:\n  - {address: x, runtime: vm}\n", `hosts[0].runtime: must be docker or sim, got "vm"`},
		{"control plane host", "control_plane: {host: z}\nhosts:\n  - {address: x}\n", `control_plane.host: "z" is neither`},
		{"store", "control_plane: {store: redis}\nhosts:\n  - {address: x}\n", "control_plane.store: must be sqlite"},
		{"relative workdir", "hosts:\n  - {address: x, workdir: rs}\n", `hosts[0].workdir: "rs" must be an absolute path`},
		{"options not flags", "hosts:\n  - {address: x, options: [rm, -rf]}\n", `hosts[0].options: "rm": options are flags`},
		{"port", "hosts:\n  - {address: x, port: 70000}\n", "hosts[0].port: 70000 is not a port"},
		{"timeout", "timeout: soon\nhosts:\n  - {address: x}\n", `"soon" is not a duration`},
		{"address with user", "hosts:\n  - {name: a, address: root@x}\n", `hosts[0].address: "root@x" is not a host name`},
		{"empty", "", "the file is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestParseWorkersInfo(t *testing.T) {
	// The original's ManagementEngine/WorkersInfo.json: its shell strings are not run.
	f, err := Parse([]byte(`[{"address": "10.0.0.5", "user": "ubuntu", "launch_worker": "cd x && sudo python3 Worker.py", "kill_worker": "sudo python3 TerminateWorker.py"},
	 {"address": "10.0.0.6", "user": "ubuntu"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if f.ControlPlane.Host != Local || len(f.Hosts) != 2 || f.Hosts[0].Name != "10.0.0.5" || f.Hosts[1].User != "ubuntu" || f.Hosts[1].Runtime != "docker" {
		t.Errorf("fleet: %+v", f)
	}
	if _, err := Parse([]byte(`[{"address": "x", "password": "p"}]`)); err == nil || !strings.Contains(err.Error(), `unknown field "password"`) {
		t.Errorf("unknown field: %v", err)
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"rswarm", "rswarm"},
		{"/var/lib/rswarm/bin/rswarm", "/var/lib/rswarm/bin/rswarm"},
		{"tcp://10.0.0.1:3100", "tcp://10.0.0.1:3100"},
		{"", "''"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"--x=1", "'--x=1'"}, // a leading NAME= word would be an assignment
		{"$(reboot)", "'$(reboot)'"},
		{"~", "'~'"},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestCommandThroughShell hands Command's string to a real POSIX shell, as
// sshd does, and checks that every argument arrives as it was.
func TestCommandThroughShell(t *testing.T) {
	args := []string{"printf", `%s\0`, "", "a b", "it's", `"q"`, "$HOME", "`id`", "$(id)", "a;b", "x|y", "&", "*", "~", "\n", "\\", "'", "--k=v", "é"}
	out, err := exec.Command("/bin/sh", "-c", Command(args)).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if !reflect.DeepEqual(args[2:], got) {
		t.Errorf("arguments changed in the shell:\nwant %q\ngot  %q", args[2:], got)
	}
}

func TestShapeArgs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		s     Shape
		apply [][]string
	}{
		{"rate only: an HTB class at the rate, no netem",
			Shape{Device: "eth0", To: "10.0.0.3", Class: 0x12, Rate: "10mbit"},
			[][]string{
				{"tc", "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:12", "htb", "rate", "10mbit", "ceil", "10mbit"},
				{"tc", "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "18", "u32", "match", "ip", "dst", "10.0.0.3/32", "flowid", "1:12"},
			}},
		{"delay: a 10gbit class with a netem leaf",
			Shape{Device: "eth0", To: "10.0.0.3", Class: 0x12, Delay: "50ms", Jitter: "5ms", Distribution: "normal", Loss: "1%"},
			[][]string{
				{"tc", "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:12", "htb", "rate", "10gbit", "ceil", "10gbit"},
				{"tc", "qdisc", "add", "dev", "eth0", "parent", "1:12", "handle", "12:", "netem", "delay", "50ms", "5ms", "distribution", "normal", "loss", "1%"},
				{"tc", "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "18", "u32", "match", "ip", "dst", "10.0.0.3/32", "flowid", "1:12"},
			}},
		{"port filter",
			Shape{Device: "eth1", To: "10.0.0.4", Port: 5001, Class: 0x10, Rate: "1mbit"},
			[][]string{
				{"tc", "class", "add", "dev", "eth1", "parent", "1:", "classid", "1:10", "htb", "rate", "1mbit", "ceil", "1mbit"},
				{"tc", "filter", "add", "dev", "eth1", "parent", "1:", "protocol", "ip", "prio", "16", "u32", "match", "ip", "dst", "10.0.0.4/32", "match", "ip", "dport", "5001", "0xffff", "flowid", "1:10"},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.s.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := tc.s.ApplyArgs(); !reflect.DeepEqual(tc.apply, got) {
				t.Errorf("ApplyArgs:\nwant %q\ngot  %q", tc.apply, got)
			}
		})
	}
	if got := ClearArgs("eth0"); !reflect.DeepEqual([]string{"tc", "qdisc", "del", "dev", "eth0", "root"}, got) {
		t.Errorf("ClearArgs = %q", got)
	}
}

func TestShapeValidate(t *testing.T) {
	base := Shape{Device: "eth0", To: "10.0.0.3", Class: 0x12}
	for _, tc := range []struct {
		name string
		mod  func(*Shape)
		want string
	}{
		{"nothing asked", func(*Shape) {}, "--rate: give --rate, --delay or --loss"},
		{"bad rate", func(s *Shape) { s.Rate = "10 mbit; reboot" }, "--rate:"},
		{"bad delay", func(s *Shape) { s.Delay = "50" }, "--delay:"},
		{"jitter alone", func(s *Shape) { s.Rate, s.Jitter = "1mbit", "5ms" }, "--jitter: needs --delay"},
		{"distribution", func(s *Shape) { s.Delay, s.Jitter, s.Distribution = "5ms", "1ms", "uniform" }, "--distribution:"},
		{"loss", func(s *Shape) { s.Loss = "1" }, "--loss:"},
		{"to", func(s *Shape) { s.Rate, s.To = "1mbit", "host;x" }, "--to:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.mod(&s)
			if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseQdiscs(t *testing.T) {
	for _, tc := range []struct {
		name          string
		config        string
		sys, files    []string
		htb, tbf, net bool
	}{
		// This machine's kernel: HTB and TBF built in, netem not set.
		{"built in, netem not set", "CONFIG_NET_SCH_HTB=y\nCONFIG_NET_SCH_TBF=y\n# CONFIG_NET_SCH_NETEM is not set\n", []string{"sch_htb"}, nil, true, true, false},
		{"modules on disk", "CONFIG_NET_SCH_HTB=m\nCONFIG_NET_SCH_NETEM=m\n", nil, []string{"sch_htb.ko", "sch_netem.ko.xz"}, true, false, true},
		{"no config: loaded modules", "", []string{"sch_netem", "sch_htb"}, nil, true, false, true},
		{"not set wins over a stale file", "# CONFIG_NET_SCH_NETEM is not set", nil, []string{"sch_netem.ko"}, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := ParseQdiscs(tc.config, tc.sys, tc.files)
			if q["htb"] != tc.htb || q["tbf"] != tc.tbf || q["netem"] != tc.net {
				t.Errorf("got %v", q)
			}
		})
	}
	q := Qdiscs{"htb": true, "tbf": true}
	if got := q.Missing(Shape{Delay: "5ms"}); len(got) != 1 || got[0] != "netem" {
		t.Errorf("Missing(delay) = %v", got)
	}
	if got := q.Missing(Shape{Rate: "1mbit"}); len(got) != 0 {
		t.Errorf("Missing(rate) = %v", got)
	}
	if q.String() != "htb tbf no-netem" {
		t.Errorf("String = %q", q.String())
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	err := WriteTable(&b, []*HostReport{
		{Host: "rsn1", State: StateControl, Took: 2400 * time.Millisecond, Notes: []string{"binary uploaded"}},
		{Host: "rsn2", State: StateReady, NodeID: "pk6ox3", Workers: 1, Cores: 2, Memory: 25276182528, Took: 3900 * time.Millisecond},
		{Host: "sims", State: StateReady, NodeID: "sims-0000", Workers: 500, Cores: 8000, Memory: 500 << 36},
		{Host: "rsn3", State: StateRefused, Error: "host key mismatch"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `HOST  STATE    NODE ID           CORES  MEMORY    TIME  DETAIL
rsn1  control  -                 -      -         2.4s  binary uploaded
rsn2  ready    pk6ox3            2      23.5 GiB  3.9s  
sims  ready    sims-0000 (+499)  8000   31.2 TiB  -     
rsn3  refused  -                 -      -         -     host key mismatch
`
	if b.String() != want {
		t.Errorf("table:\nwant\n%s\ngot\n%s", want, b.String())
	}
}

// TestArgv checks the command lines manage starts on the hosts: the
// control plane alone on its host, a Docker worker advertising its
// address, simulated workers in one process with the grace and heartbeat
// widened for a large fleet, and user options last.
func TestArgv(t *testing.T) {
	f, err := Parse([]byte(`
control_plane: {host: n1, insecure: true, options: [--resync, 1s]}
defaults: {key_file: /k, known_hosts: /kh}
hosts:
  - {name: n1, address: 10.0.0.1, count: 0}
  - {name: n2, address: 10.0.0.2, options: [--pull]}
  - {name: s1, address: local, runtime: sim, count: 1000, workdir: /tmp/s1}
`))
	if err != nil {
		t.Fatal(err)
	}
	m := New(f, Options{Binary: "/opt/rswarm"})
	for _, tc := range []struct {
		name string
		got  []string
		want []string
	}{
		{"control plane", m.controlArgv("n1"), []string{"/var/lib/rswarm/bin/rswarm", "up", "--workers", "0", "--strategy", "best-fit",
			"--frontend-addr", "127.0.0.1:5001", "--globalmanager-addr", "127.0.0.1:5000",
			"--globalmanager-bus", "tcp://10.0.0.1:3100", "--discovery-bus", "tcp://10.0.0.1:4000", "--advertise-addr", "10.0.0.1",
			"--data-dir", "/var/lib/rswarm/data", "--insecure", "--bus-auth=false", "--heartbeat-grace", "15s", "--resync", "1s"}},
		{"docker worker", m.workerArgv(f.Host("n2")), []string{"/var/lib/rswarm/bin/rswarm", "worker", "--runtime", "docker",
			"--globalmanager-bus", "tcp://10.0.0.1:3100", "--discovery-bus", "tcp://10.0.0.1:4000", "--advertise-addr", "10.0.0.2", "--insecure", "--bus-auth=false", "--pull"}},
		// 1,000 simulated workers: heartbeat every 2 s (2 ms each), the local binary.
		{"simulated workers", m.workerArgv(f.Host("s1")), []string{"/opt/rswarm", "worker", "--runtime", "sim",
			"--globalmanager-bus", "tcp://10.0.0.1:3100", "--discovery-bus", "tcp://10.0.0.1:4000", "--sim-id", "s1", "--workers", "1000", "--heartbeat", "2s", "--insecure", "--bus-auth=false"}},
	} {
		if !reflect.DeepEqual(tc.want, tc.got) {
			t.Errorf("%s:\nwant %q\ngot  %q", tc.name, tc.want, tc.got)
		}
	}
	if _, err := Parse([]byte("hosts:\n  - {name: h, address: local}\n")); err == nil || !strings.Contains(err.Error(), "is for simulated workers") {
		t.Errorf("a local docker host: %v", err)
	}
}

// TestExampleFleet: the committed lab fleet file parses as it is.
func TestExampleFleet(t *testing.T) {
	f, err := Load("../examples/fleet-lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if f.ControlPlane.Host != "rsn1" || f.ControlPlane.Address != "10.231.0.11" || len(f.Hosts) != 3 || f.Host("rsn1").Workers() != 0 || f.Host("rsn3").KeyFile != "/tmp/rswarm-lab-rs/ssh/id_ed25519" {
		t.Errorf("example fleet: %+v", f)
	}
}
