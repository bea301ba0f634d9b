package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/rswarm/rswarm/bus"
)

// The bus's CURVE keys live in the data directory:
//
//	<data-dir>/bus/<role>.key         secret key of a role (Z85, mode 0600), made on first start
//	<data-dir>/bus/<role>.pub         its public key (Z85, one line)
//	<data-dir>/bus/authorized/*.pub   further client keys the servers accept
//
// Roles are jobmanager, discovery, globalmanager (the servers), frontend and
// worker. A server accepts every *.pub of its own keys directory (processes
// that share a data directory trust each other with no configuration) and of
// the authorised-keys directory. A client finds a server's public key in its
// own keys directory (making the pair when it is missing, as the server
// would: they share the directory), unless --<server>-key names it.

// busRoles are the roles with a key pair.
var busRoles = []string{"jobmanager", "discovery", "globalmanager", "frontend", "worker"}

// keysDir returns the directory of this process's bus keys.
func (e *endpoints) keysDir() string {
	if e.busKeysDir != "" {
		return e.busKeysDir
	}
	return filepath.Join(e.dataDir, "bus")
}

func (e *endpoints) authorizedDir() string {
	if e.authorizedKeysDir != "" {
		return e.authorizedKeysDir
	}
	return filepath.Join(e.keysDir(), "authorized")
}

// ensureKey returns role's key pair from dir, making it on first use. Two
// processes making the same role's pair at once end with one pair: the
// secret key file is linked into place, never overwritten.
func ensureKey(dir, role string) (bus.KeyPair, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return bus.KeyPair{}, fmt.Errorf("bus keys: %w", err)
	}
	path := filepath.Join(dir, role+".key")
	pub := filepath.Join(dir, role+".pub")
	// Look at the public key before the secret: a process making the pair
	// links the secret into place before it writes the public key, and a
	// secret is never removed, so a public key seen first with no secret
	// after it was copied here, not made here.
	_, perr := os.Stat(pub)
	kp, err := readSecret(path)
	if errors.Is(err, fs.ErrNotExist) {
		if perr == nil {
			// A public key without its secret: copied from the host where
			// that role runs. Never replace it.
			return bus.KeyPair{}, fmt.Errorf("bus keys: %s holds the public key of a %s elsewhere, and %s has no secret key: run the %s where its key pair is, or remove the copied key", pub, role, dir, role)
		}
		kp, err = createSecret(dir, path)
	}
	if err != nil {
		return bus.KeyPair{}, err
	}
	if b, err := os.ReadFile(pub); err == nil && strings.TrimSpace(string(b)) == kp.Public {
		return kp, nil
	}
	if err := writeAtomic(dir, pub, kp.Public+"\n", 0o644); err != nil {
		return bus.KeyPair{}, err
	}
	return kp, nil
}

func readSecret(path string) (bus.KeyPair, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return bus.KeyPair{}, fmt.Errorf("bus keys: %w", err)
	}
	kp, err := bus.KeyPairOf(strings.TrimSpace(string(b)))
	if err != nil {
		return bus.KeyPair{}, fmt.Errorf("bus keys: %s: %w", path, err)
	}
	return kp, nil
}

func createSecret(dir, path string) (bus.KeyPair, error) {
	kp, err := bus.NewKeyPair()
	if err != nil {
		return bus.KeyPair{}, err
	}
	tmp, err := os.CreateTemp(dir, ".key-*")
	if err != nil {
		return bus.KeyPair{}, fmt.Errorf("bus keys: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(kp.Secret + "\n")
	if err = errors.Join(err, tmp.Chmod(0o600), tmp.Close()); err != nil {
		return bus.KeyPair{}, fmt.Errorf("bus keys: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readSecret(path) // another process made it first
		}
		return bus.KeyPair{}, fmt.Errorf("bus keys: %w", err)
	}
	return kp, nil
}

func writeAtomic(dir, path, content string, mode os.FileMode) error {
	tmp, err := os.CreateTemp(dir, ".pub-*")
	if err != nil {
		return fmt.Errorf("bus keys: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(content)
	if err = errors.Join(err, tmp.Chmod(mode), tmp.Close()); err != nil {
		return fmt.Errorf("bus keys: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("bus keys: %w", err)
	}
	return nil
}

// serverPublic returns the public key a client of role's server uses: the
// flag's value (a Z85 key or a file holding one), else the key pair in
// this process's keys directory.
func (e *endpoints) serverPublic(role string) (string, error) {
	v := e.serverKeys[role]
	if v == "" {
		// The public file first: a client need not read the server's secret.
		if b, err := os.ReadFile(filepath.Join(e.keysDir(), role+".pub")); err == nil {
			if k := strings.TrimSpace(string(b)); bus.CheckKey(k) == nil {
				return k, nil
			}
		}
		kp, err := ensureKey(e.keysDir(), role)
		return kp.Public, err
	}
	if bus.CheckKey(v) == nil {
		return v, nil
	}
	b, err := os.ReadFile(v)
	if err != nil {
		return "", fmt.Errorf("--%s-key: not a 40-character Z85 key, nor a readable file: %w", role, err)
	}
	k := strings.TrimSpace(string(b))
	if err := bus.CheckKey(k); err != nil {
		return "", fmt.Errorf("--%s-key %s: %w", role, v, err)
	}
	return k, nil
}

// keyRing authorises the public keys found in *.pub files of its
// directories. It reads them again when it meets a key it does not know, when
// a directory changed (a file added or removed), and at least every
// ringRescan, so a key added while the server runs (a local worker's first
// start, an operator authorising a remote one) is accepted without a
// restart, and a key removed is refused from then on.
type keyRing struct {
	dirs []string
	log  *slog.Logger

	mu      sync.Mutex
	keys    map[string]string // public key -> file it came from
	scanned time.Time
	mtimes  []time.Time // of dirs, at the last scan
}

// ringRescan bounds how long a removed key file that changed no directory
// (edited in place) is still honoured.
const ringRescan = 10 * time.Second

func newKeyRing(log *slog.Logger, dirs ...string) *keyRing {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &keyRing{dirs: dirs, log: log}
	r.mu.Lock()
	r.scanLocked()
	r.mu.Unlock()
	return r
}

// Authorize implements bus.Authorizer.
func (r *keyRing) Authorize(k string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.staleLocked() {
		r.scanLocked()
	}
	if name, ok := r.keys[k]; ok {
		return name, true
	}
	r.scanLocked()
	name, ok := r.keys[k]
	return name, ok
}

func (r *keyRing) dirTimes() []time.Time {
	ts := make([]time.Time, len(r.dirs))
	for i, d := range r.dirs {
		if st, err := os.Stat(d); err == nil {
			ts[i] = st.ModTime()
		}
	}
	return ts
}

func (r *keyRing) staleLocked() bool {
	return time.Since(r.scanned) > ringRescan || !slices.Equal(r.dirTimes(), r.mtimes)
}

func (r *keyRing) scanLocked() {
	r.mtimes, r.scanned = r.dirTimes(), time.Now()
	keys := make(map[string]string)
	for _, dir := range r.dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.pub"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			fields := strings.Fields(string(b))
			if len(fields) == 0 || bus.CheckKey(fields[0]) != nil {
				r.log.Warn("bus keys: ignoring a file that holds no public key", "path", f)
				continue
			}
			keys[fields[0]] = f
		}
	}
	r.keys = keys
}

// busEndpointLocal reports whether a ZeroMQ endpoint is reachable from this
// host only (loopback TCP, ipc, inproc).
func busEndpointLocal(ep string) bool {
	switch {
	case strings.HasPrefix(ep, "ipc://"), strings.HasPrefix(ep, "inproc://"):
		return true
	case strings.HasPrefix(ep, "tcp://"):
		return isLoopback(strings.TrimPrefix(ep, "tcp://"))
	}
	return false
}

// listenBus binds role's bus server at addr: with CURVE (the default),
// accepting the keys of the keys directory and the authorised-keys
// directory; without it only on loopback, unless --insecure. The servers
// workers reach (the globalmanager's and discovery's) also take carriers,
// the one connection all simulated workers of a process share (see
// carriers.go): any key they accept may carry, each worker's identity
// bound to its key.
func (e *endpoints) listenBus(role, addr string, h bus.Handler, log *slog.Logger, opts ...bus.Option) (*bus.Server, error) {
	carrying := role == "globalmanager" || role == "discovery"
	if !e.busAuth {
		if !busEndpointLocal(addr) && !e.insecure {
			return nil, fmt.Errorf("refusing to bind the %s bus on %s without CURVE: drop --bus-auth=false, bind it to 127.0.0.1, or pass --insecure to serve it open", role, addr)
		}
		if carrying {
			opts = append(opts, bus.WithCarrying(nil))
		}
		return bus.Listen(addr, h, log, opts...)
	}
	kp, err := ensureKey(e.keysDir(), role)
	if err != nil {
		return nil, err
	}
	ring := newKeyRing(log, e.keysDir(), e.authorizedDir())
	opts = append(opts, bus.WithCurveServer(kp.Secret, ring))
	if carrying {
		opts = append(opts, bus.WithCarrying(ring))
	}
	return bus.Listen(addr, h, log, opts...)
}

// dialBus connects role's client to server's bus at addr under id.
func (e *endpoints) dialBus(role, server, addr, id string, h bus.Handler, log *slog.Logger, opts ...bus.Option) (*bus.Client, error) {
	curve, err := e.clientOptions(role, server, addr, log)
	if err != nil {
		return nil, err
	}
	return bus.Dial(addr, id, h, log, append(opts, curve...)...)
}

// clientOptions returns the options of role's client of server's bus at
// addr: its CURVE keys, unless the bus runs without.
func (e *endpoints) clientOptions(role, server, addr string, log *slog.Logger) ([]bus.Option, error) {
	if !e.busAuth {
		return nil, nil
	}
	kp, err := ensureKey(e.keysDir(), role)
	if err != nil {
		return nil, err
	}
	if e.serverKeys[server] == "" && !busEndpointLocal(addr) {
		if _, err := os.Stat(filepath.Join(e.keysDir(), server+".key")); errors.Is(err, fs.ErrNotExist) {
			if _, err := os.Stat(filepath.Join(e.keysDir(), server+".pub")); errors.Is(err, fs.ErrNotExist) && log != nil {
				log.Warn("bus: no public key of the "+server+" in "+e.keysDir()+": making a key pair there; a "+server+" on another host will refuse this client: pass --"+server+"-key, or copy its "+server+".pub here", "bus", addr)
			}
		}
	}
	spub, err := e.serverPublic(server)
	if err != nil {
		return nil, err
	}
	return []bus.Option{bus.WithCurveClient(spub, kp)}, nil
}

func init() {
	var ep endpoints
	var role string
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "print a role's bus public key, making the key pair on first use (default: the worker's)",
		Long: `Prints the CURVE public key of a role (default worker) from <data-dir>/bus,
making the key pair when it is missing. To let a worker on another host in,
copy its key into the control plane's <data-dir>/bus/authorized/<name>.pub,
and give the worker the control plane's globalmanager and discovery keys
(rswarm keys --role globalmanager / --role discovery there) with
--globalmanager-key and --discovery-key, or copy those two .pub files into
the worker's <data-dir>/bus/.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !strings.Contains(" "+strings.Join(busRoles, " ")+" ", " "+role+" ") {
				roles := append([]string(nil), busRoles...)
				sort.Strings(roles)
				return fmt.Errorf("--role must be one of %s, got %q", strings.Join(roles, ", "), role)
			}
			kp, err := ensureKey(ep.keysDir(), role)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), kp.Public)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&ep.dataDir, "data-dir", "./data", "data directory (keys are in <data-dir>/bus)")
	f.StringVar(&ep.busKeysDir, "bus-keys-dir", "", "directory of this host's bus key pairs (default <data-dir>/bus)")
	f.StringVar(&role, "role", "worker", "role whose key to print: "+strings.Join(busRoles, ", "))
	addCommand(cmd)
}
