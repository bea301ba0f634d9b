package management

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
)

// Shape is one network emulation rule: traffic leaving a host's Device for
// the address To is limited to Rate and/or delayed through netem.
type Shape struct {
	Device string
	// To is the destination IP address the rule filters on.
	To string
	// Port, when non-zero, narrows the filter to this TCP/UDP destination port.
	Port int
	// Class is the HTB class minor number (and the netem handle) of the rule.
	Class int
	// Rate is an HTB rate ("10mbit"); empty means no limit (HTB's class
	// gets 10gbit so that only netem acts).
	Rate string
	// Delay, Jitter ("50ms", "5ms"), Distribution (normal, pareto,
	// paretonormal) and Loss ("1%") go to netem.
	Delay, Jitter, Distribution, Loss string
}

// NeedsNetem says whether the rule needs the netem qdisc.
func (s Shape) NeedsNetem() bool { return s.Delay != "" || s.Loss != "" }

var (
	rateRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)$`)
	timeRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(us|ms|s)$`)
	lossRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?%$`)
)

// Validate checks every field, naming the flag of a bad one.
func (s Shape) Validate() error {
	if s.Device == "" || strings.ContainsAny(s.Device, " /") {
		return bad("device", "%q is not a network interface", s.Device)
	}
	if net.ParseIP(s.To) == nil {
		return bad("--to", "%q is not an IP address", s.To)
	}
	if s.Port < 0 || s.Port > 65535 {
		return bad("--port", "%d is not a port", s.Port)
	}
	if s.Class < 2 || s.Class > 0xfffe {
		return bad("class", "%d is out of range", s.Class)
	}
	if s.Rate == "" && !s.NeedsNetem() {
		return bad("--rate", "give --rate, --delay or --loss")
	}
	if s.Rate != "" && !rateRE.MatchString(s.Rate) {
		return bad("--rate", "%q is not a rate like 10mbit", s.Rate)
	}
	if s.Delay != "" && !timeRE.MatchString(s.Delay) {
		return bad("--delay", "%q is not a time like 50ms", s.Delay)
	}
	if s.Jitter != "" {
		if s.Delay == "" {
			return bad("--jitter", "needs --delay")
		}
		if !timeRE.MatchString(s.Jitter) {
			return bad("--jitter", "%q is not a time like 5ms", s.Jitter)
		}
	}
	switch s.Distribution {
	case "", "normal", "pareto", "paretonormal":
	default:
		return bad("--distribution", "must be normal, pareto or paretonormal, got %q", s.Distribution)
	}
	if s.Distribution != "" && s.Jitter == "" {
		return bad("--distribution", "needs --jitter")
	}
	if s.Loss != "" && !lossRE.MatchString(s.Loss) {
		return bad("--loss", "%q is not a percentage like 1%%", s.Loss)
	}
	return nil
}

// TC is the tc program's name on the hosts.
const TC = "tc"

// RootArgs installs the HTB root qdisc (handle 1:). Traffic that no filter
// sends to a class passes unshaped.
func RootArgs(dev string) []string {
	return []string{TC, "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb"}
}

// RemoveArgs are the commands that take a rule away (each may fail when the
// rule is not there: the caller ignores their errors).
func (s Shape) RemoveArgs() [][]string {
	return [][]string{
		{TC, "filter", "del", "dev", s.Device, "parent", "1:", "protocol", "ip", "prio", strconv.Itoa(s.Class)},
		{TC, "class", "del", "dev", s.Device, "classid", s.classID()},
	}
}

// ApplyArgs are the commands that install the rule under an HTB root that
// is already there: its class, its netem leaf when it needs one, and its
// filter. The rule's filter has its own priority (the class number), so
// that RemoveArgs can take it away alone.
func (s Shape) ApplyArgs() [][]string {
	rate := s.Rate
	if rate == "" {
		rate = "10gbit"
	}
	cmds := [][]string{{TC, "class", "add", "dev", s.Device, "parent", "1:", "classid", s.classID(), "htb", "rate", rate, "ceil", rate}}
	if s.NeedsNetem() {
		q := []string{TC, "qdisc", "add", "dev", s.Device, "parent", s.classID(), "handle", fmt.Sprintf("%x:", s.Class), "netem"}
		if s.Delay != "" {
			q = append(q, "delay", s.Delay)
			if s.Jitter != "" {
				q = append(q, s.Jitter)
				if s.Distribution != "" {
					q = append(q, "distribution", s.Distribution)
				}
			}
		}
		if s.Loss != "" {
			q = append(q, "loss", s.Loss)
		}
		cmds = append(cmds, q)
	}
	f := []string{TC, "filter", "add", "dev", s.Device, "parent", "1:", "protocol", "ip", "prio", strconv.Itoa(s.Class), "u32", "match", "ip", "dst", s.To + "/32"}
	if s.Port != 0 {
		f = append(f, "match", "ip", "dport", strconv.Itoa(s.Port), "0xffff")
	}
	return append(cmds, append(f, "flowid", s.classID()))
}

// ClearArgs removes every rule of the device (its root qdisc).
func ClearArgs(dev string) []string {
	return []string{TC, "qdisc", "del", "dev", dev, "root"}
}

// ShowArgs list what is applied on the device.
func ShowArgs(dev string) [][]string {
	return [][]string{
		{TC, "qdisc", "show", "dev", dev},
		{TC, "class", "show", "dev", dev},
		{TC, "filter", "show", "dev", dev},
	}
}

func (s Shape) classID() string { return fmt.Sprintf("1:%x", s.Class) }

// Qdiscs says which queueing disciplines a host's kernel has.
type Qdiscs map[string]bool

// QdiscNames are the disciplines `manage` uses or reports.
var QdiscNames = []string{"htb", "tbf", "netem"}

// ParseQdiscs reads a kernel's support for QdiscNames from its build
// configuration (the text of /proc/config.gz, may be empty), the modules
// loaded or built in (names under /sys/module), and the module files
// present under /lib/modules/<release> (base names like "sch_netem.ko.xz").
// A discipline built in (=y), loaded, or available as a module file is
// supported; one the configuration says is not set is not, whatever else
// says; with no evidence either way it is reported unsupported.
func ParseQdiscs(config string, sysModules, moduleFiles []string) Qdiscs {
	out := Qdiscs{}
	cfg := map[string]string{}
	for _, line := range strings.Split(config, "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok {
			cfg[k] = v
		} else if strings.HasPrefix(line, "# ") && strings.HasSuffix(line, " is not set") {
			cfg[strings.TrimSuffix(strings.TrimPrefix(line, "# "), " is not set")] = "n"
		}
	}
	has := func(list []string, mod string) bool {
		for _, m := range list {
			if m == mod || strings.HasPrefix(m, mod+".ko") {
				return true
			}
		}
		return false
	}
	for _, q := range QdiscNames {
		key, mod := "CONFIG_NET_SCH_"+strings.ToUpper(q), "sch_"+q
		switch v := cfg[key]; {
		case v == "y":
			out[q] = true
		case v == "n":
			out[q] = false
		default:
			out[q] = has(sysModules, mod) || has(moduleFiles, mod)
		}
	}
	return out
}

// Missing lists the disciplines a rule needs that the host lacks.
func (q Qdiscs) Missing(s Shape) []string {
	var miss []string
	if !q["htb"] {
		miss = append(miss, "htb")
	}
	if s.NeedsNetem() && !q["netem"] {
		miss = append(miss, "netem")
	}
	return miss
}

// String lists the disciplines as "htb tbf !netem".
func (q Qdiscs) String() string {
	parts := make([]string, 0, len(QdiscNames))
	for _, n := range QdiscNames {
		if q[n] {
			parts = append(parts, n)
		} else {
			parts = append(parts, "no-"+n)
		}
	}
	return strings.Join(parts, " ")
}
