package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	units "github.com/docker/go-units"
)

// FieldError is bad input: which field (a dotted JSON path) and why.
type FieldError struct {
	Field  string
	Reason string
	// Kind classifies the error when it is not plain bad input (ErrConflict for a duplicate name).
	Kind error
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Is makes errors.Is(err, ErrInvalid) true for field errors.
func (e *FieldError) Is(target error) bool {
	if e.Kind != nil {
		return target == e.Kind
	}
	return target == ErrInvalid
}

// Invalid returns a *FieldError for field with a formatted reason.
func Invalid(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// DecodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data, and turns the decoder's errors into *FieldError naming the
// field and the reason.
func DecodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fieldFromJSON(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &FieldError{Reason: "body holds more than one JSON value"}
	}
	return nil
}

var unknownField = regexp.MustCompile(`^json: unknown field "(.*)"$`)

func fieldFromJSON(err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return &FieldError{Field: te.Field, Reason: fmt.Sprintf("must be %s, got %s", jsonKind(te.Type.Kind().String()), te.Value)}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &FieldError{Reason: fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)}
	}
	if errors.Is(err, io.EOF) {
		return &FieldError{Reason: "empty body: a JSON object is required"}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &FieldError{Reason: "malformed JSON: unexpected end of input"}
	}
	if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
		f := m[1]
		if i := strings.LastIndexByte(f, '.'); i >= 0 {
			f = f[i+1:]
		}
		reason := "unknown field"
		if f == "cpu_count" {
			reason = "unknown field (the original Swagger's cpu_count is spelled req_cores)"
		}
		return &FieldError{Field: m[1], Reason: reason}
	}
	var ste interface{ Error() string }
	if errors.As(err, &ste) {
		return &FieldError{Reason: err.Error()}
	}
	return err
}

func jsonKind(k string) string {
	switch k {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	}
	return "of type " + k
}

func prefixField(err error, prefix string) error {
	err = fieldFromJSON(err)
	var fe *FieldError
	if errors.As(err, &fe) {
		if fe.Field == "" {
			return &FieldError{Field: prefix, Reason: fe.Reason}
		}
		return &FieldError{Field: prefix + "." + fe.Field, Reason: fe.Reason}
	}
	return err
}

// Limits are the operator's bounds on what a job may ask for.
type Limits struct {
	// MaxCores is the largest req_cores a task may ask for (default 1024).
	MaxCores int
	// AllowHostVolumes lets tasks bind host paths into containers.
	AllowHostVolumes bool
}

// DefaultLimits returns the limits used when the operator sets none.
func DefaultLimits() Limits { return Limits{MaxCores: 1024} }

// nameRE is Docker's rule for container and network names.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// imageRE is a conservative image reference: [registry[:port]/]path[:tag][@digest].
var imageRE = regexp.MustCompile(`^(?:[a-zA-Z0-9][a-zA-Z0-9.-]*(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$`)

const maxNameLen = 128

// maxImageLen is Docker's limit on an image reference.
const maxImageLen = 255

// MaxJobBytes is the largest job, as JSON, that the roles carry: the
// frontend refuses a submission whose stored form would be larger
// ([CheckJobSize]) and the globalmanager refuses, never truncates, a
// deploy body above it.
const MaxJobBytes = 16 << 20

// taskRoom is what each task may grow by between submission and deploy
// (its node, cores, state and times).
const taskRoom = 512

// CheckJobSize refuses a submitted job of n bytes with tasks tasks that,
// once placed, would exceed MaxJobBytes.
func CheckJobSize(n, tasks int) error {
	if n+tasks*taskRoom > MaxJobBytes {
		return Invalid("", "job too large: %d bytes and %d tasks (each placed task takes up to %d bytes more) exceed the limit of %d bytes", n, tasks, taskRoom, MaxJobBytes)
	}
	return nil
}

// ValidName checks a container, job or network name against Docker's rules.
func ValidName(field, name string) error {
	switch {
	case name == "":
		return Invalid(field, "required")
	case len(name) > maxNameLen:
		return Invalid(field, "longer than %d characters", maxNameLen)
	case !nameRE.MatchString(name):
		return Invalid(field, "%q is not a valid Docker name: use letters, digits, '_', '.' and '-', starting with a letter or digit", name)
	}
	return nil
}

// Validate checks a submitted job and fills in defaults (network name and
// driver, task states). It returns the first problem as a *FieldError.
func (j *Job) Validate(lim Limits) error {
	if lim.MaxCores <= 0 {
		lim.MaxCores = DefaultLimits().MaxCores
	}
	if err := ValidName("job_name", j.Name); err != nil {
		return err
	}
	if len(j.Info.Tasks) == 0 {
		return Invalid("job_info.tasks", "required: a job needs at least one task")
	}
	n := &j.Info.Network
	if n.Name == "" {
		n.Name = networkName(j.Name)
	}
	if err := ValidName("job_info.network.name", n.Name); err != nil {
		return err
	}
	driver, weave, err := normaliseDriver(n.Driver)
	if err != nil {
		return err
	}
	if weave {
		j.addNote(fmt.Sprintf("network driver %q (the original's Weave plugin, not installed here) runs as an attachable Swarm overlay", n.Driver))
	}
	n.Driver = driver
	if n.Subnet != "" {
		p, err := netip.ParsePrefix(n.Subnet)
		if err != nil || !p.Addr().Is4() {
			return Invalid("job_info.network.subnet", "%q is not an IPv4 CIDR such as 10.52.1.0/24", n.Subnet)
		}
		n.Subnet = p.Masked().String()
	}
	if err := j.mapNFS(); err != nil {
		return err
	}
	for _, t := range j.Info.Tasks {
		if err := t.validate(j.Name, lim); err != nil {
			return err
		}
	}
	if _, err := ParseRestart(j.Restart); err != nil {
		return Invalid("restart", "%v", err)
	}
	j.Status = Ready
	j.Restarts = 0
	j.StartTime, j.EndTime, j.PlaceTime, j.DeployTime = 0, 0, 0, 0
	j.WaitingReason, j.Error = "", ""
	return nil
}

// networkName is the network generated for job: "rsnet_<job>", or, when
// that is longer than a name may be (the job's name may take all 128
// characters), its head and a hash of the whole job name, so that a field
// the user never sent is never refused and two long names do not collide.
func networkName(job string) string {
	n := "rsnet_" + job
	if len(n) <= maxNameLen {
		return n
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(job))
	suffix := fmt.Sprintf("_%08x", h.Sum32())
	return n[:maxNameLen-len(suffix)] + suffix
}

// CheckTask applies to one task of job the rules Validate applies to a
// submitted job's tasks, without changing t: a worker checks every task it
// is told to run, whatever the sender.
func CheckTask(job string, t Task, lim Limits) error {
	if lim.MaxCores <= 0 {
		lim.MaxCores = DefaultLimits().MaxCores
	}
	if err := ValidName("job", job); err != nil {
		return err
	}
	return t.validate(job, lim) // t is a copy; validate changes no map
}

func (t *Task) validate(job string, lim Limits) error {
	p := "job_info.tasks." + t.ContainerName
	if err := ValidName(p+".container_name", t.ContainerName); err != nil {
		return err
	}
	if !strings.HasPrefix(t.ContainerName, job+"_") || len(t.ContainerName) == len(job)+1 {
		return Invalid(p+".container_name", "must be <job_name>_<suffix>, that is start with %q", job+"_")
	}
	if t.Image == "" {
		return Invalid(p+".image", "required")
	}
	if len(t.Image) > maxImageLen {
		return Invalid(p+".image", "longer than %d characters (Docker's limit)", maxImageLen)
	}
	if strings.ContainsAny(t.Image, " \t\n;&|$`'\"\\<>(){}*?!#~") {
		return Invalid(p+".image", "%q contains shell metacharacters or spaces", t.Image)
	}
	if !imageRE.MatchString(t.Image) {
		return Invalid(p+".image", "%q is not a valid image reference such as rswarm/busybox:latest", t.Image)
	}
	if t.ReqCores < 1 {
		return Invalid(p+".req_cores", "must be at least 1, got %d", t.ReqCores)
	}
	if t.ReqCores > lim.MaxCores {
		return Invalid(p+".req_cores", "must be at most %d (the configured cap), got %d", lim.MaxCores, t.ReqCores)
	}
	if _, err := SplitCommand(t.Command); err != nil {
		return Invalid(p+".command", "%v", err)
	}
	if t.MemLimit != "" {
		b, err := ParseMem(t.MemLimit)
		if err != nil {
			return Invalid(p+".mem_limit", "%v", err)
		}
		if b < 6<<20 {
			return Invalid(p+".mem_limit", "%q is below Docker's minimum of 6m", t.MemLimit)
		}
	}
	if t.CpusetCpus != "" {
		cores, err := ParseCpuset(t.CpusetCpus)
		if err != nil {
			return Invalid(p+".cpuset_cpus", "%v", err)
		}
		if len(cores) != t.ReqCores {
			return Invalid(p+".cpuset_cpus", "names %d cores but req_cores is %d", len(cores), t.ReqCores)
		}
		if t.Node == "" {
			return Invalid(p+".node", "required when cpuset_cpus is given")
		}
	}
	for k, v := range t.Ports {
		if _, _, err := ParsePort(k, v); err != nil {
			return Invalid(p+".ports."+k, "%v", err)
		}
	}
	for host, v := range t.Volumes {
		if v.Bind == "" || !strings.HasPrefix(v.Bind, "/") {
			return Invalid(p+".volumes."+host+".bind", "must be an absolute path inside the container")
		}
		if v.Mode != "" && v.Mode != "rw" && v.Mode != "ro" {
			return Invalid(p+".volumes."+host+".mode", "must be \"rw\" or \"ro\"")
		}
		if strings.HasPrefix(host, "/") {
			if !lim.AllowHostVolumes {
				return Invalid(p+".volumes."+host, "host-path volumes are refused unless the operator allows them (--allow-host-volumes)")
			}
		} else if err := ValidName(p+".volumes."+host, host); err != nil {
			return err
		}
	}
	for k := range t.Environment {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return Invalid(p+".environment", "variable name %q is not valid", k)
		}
	}
	if t.Duration < 0 {
		return Invalid(p+".duration", "must not be negative")
	}
	t.Status = Ready
	t.ExitCode, t.Error, t.Logs = nil, "", nil
	t.StartTime, t.EndTime = 0, 0
	return nil
}

// ParseMem parses a memory size as Docker reads mem_limit and --memory
// (docker/go-units' RAMInBytes): a number with an optional unit b, k, m, g,
// t or p, binary (1k = 1024 bytes), optionally followed by b or ib and
// in any case ("10m", "10MB", "2GiB", "1t", "1.5g"). Sizes below one byte
// or above 2^50 bytes (1 PiB) are refused.
func ParseMem(s string) (int64, error) {
	v := strings.TrimSpace(s)
	n, err := units.RAMInBytes(v)
	if err != nil || n < 1 || n > 1<<50 || strings.ContainsAny(v, "eExX") {
		// (no unit has an e or x: "1e20g" and hexadecimal are not sizes)
		return 0, fmt.Errorf("%q is not a memory size such as 512m, 2g or 2GiB", s)
	}
	return n, nil
}

// Bounds on what a cpuset may name.
const (
	maxCoreID = 1<<16 - 1
	maxCpuset = 4096
)

// ParseCpuset parses a cpuset such as "0,1" or "0-3,6" into sorted, distinct core ids.
func ParseCpuset(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty cpuset")
	}
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 || a > maxCoreID {
			return nil, fmt.Errorf("%q is not a cpuset such as \"0,1\" or \"0-3\"", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b > maxCoreID {
				return nil, fmt.Errorf("%q is not a cpuset such as \"0,1\" or \"0-3\"", s)
			}
		}
		if len(seen)+b-a >= maxCpuset {
			return nil, fmt.Errorf("%q names too many cores (more than %d)", s, maxCpuset)
		}
		for c := a; c <= b; c++ {
			if seen[c] {
				return nil, fmt.Errorf("%q names core %d twice", s, c)
			}
			seen[c] = true
		}
	}
	out := make([]int, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	sort.Ints(out)
	return out, nil
}

// FormatCpuset writes core ids as Docker's cpuset string ("0,1,5").
func FormatCpuset(cores []int) string {
	var b strings.Builder
	for i, c := range cores {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(c))
	}
	return b.String()
}

// ParsePort parses one entry of the Docker SDK's ports map: a key such as
// "3000/tcp" or "3000", and a host port given as a number, a string or null
// (null lets Docker choose). It returns the container port spec and host port.
func ParsePort(key string, v any) (spec string, host int, err error) {
	port, proto, _ := strings.Cut(key, "/")
	if proto == "" {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return "", 0, fmt.Errorf("protocol %q must be tcp, udp or sctp", proto)
	}
	cp, err := strconv.Atoi(port)
	if err != nil || cp < 1 || cp > 65535 {
		return "", 0, fmt.Errorf("container port %q must be 1-65535", port)
	}
	switch hv := v.(type) {
	case nil:
	case float64:
		host = int(hv)
		if float64(host) != hv {
			return "", 0, fmt.Errorf("host port must be an integer")
		}
	case string:
		if host, err = strconv.Atoi(hv); err != nil {
			return "", 0, fmt.Errorf("host port %q must be a number", hv)
		}
	default:
		return "", 0, fmt.Errorf("host port must be a number, a string or null")
	}
	if host < 0 || host > 65535 {
		return "", 0, fmt.Errorf("host port %d must be 0-65535", host)
	}
	return fmt.Sprintf("%d/%s", cp, proto), host, nil
}

// SplitCommand splits a command line into words the way a POSIX shell would
// for quoting ('single', "double", backslash), without running a shell and
// without expanding anything.
func SplitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated double quote")
			}
			inWord = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("trailing backslash")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// NFSPrefixes are the original's NFS directories (worker and manager side).
var NFSPrefixes = []string{"/nfs/RESTfulSwarm/", "/var/nfs/RESTfulSwarm/"}

// NFSVolumePrefix starts the names of the volumes that stand for them.
const NFSVolumePrefix = "rsnfs_"

// mapNFS turns the original's per-task NFS directories (host paths under
// /nfs/RESTfulSwarm/) into named volumes of the job, one per directory:
// the worker creates each with the task, it moves with the task, and it
// is removed when the task ends. A directory shared by several tasks
// would need a network filesystem between hosts, which this cluster does
// not have: it is refused, saying so.
func (j *Job) mapNFS() error {
	users := map[string]string{} // host path -> first task using it
	for _, t := range j.Info.Tasks {
		for host, v := range t.Volumes {
			rest := ""
			for _, pre := range NFSPrefixes {
				if strings.HasPrefix(host, pre) {
					rest = strings.Trim(strings.TrimPrefix(host, pre), "/")
				}
			}
			if rest == "" {
				continue
			}
			field := "job_info.tasks." + t.ContainerName + ".volumes." + host
			if other, ok := users[host]; ok {
				return Invalid(field, "the NFS directory is shared by tasks %s and %s: sharing a directory between tasks on different hosts needs a network filesystem, which this cluster does not have (give each task its own directory, as the original's stress client does)", other, t.ContainerName)
			}
			users[host] = t.ContainerName
			name := NFSVolumePrefix + strings.ReplaceAll(rest, "/", "_")
			if !strings.HasPrefix(rest, j.Name) {
				name = NFSVolumePrefix + j.Name + "_" + strings.ReplaceAll(rest, "/", "_")
			}
			if err := ValidName(field, name); err != nil {
				return Invalid(field, "the NFS directory cannot be named as a volume (%q): use letters, digits, '_', '.' and '-'", name)
			}
			delete(t.Volumes, host)
			t.Volumes[name] = v
			j.addNote(fmt.Sprintf("NFS directory %s of task %s is the named volume %s on the task's worker (no NFS here): created with the task, moved with it, removed when it ends", host, t.ContainerName, name))
		}
	}
	return nil
}

func (j *Job) addNote(n string) {
	if !slices.Contains(j.Notes, n) {
		j.Notes = append(j.Notes, n)
	}
}
