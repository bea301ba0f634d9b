package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/engine"
	"github.com/rswarm/rswarm/management"
)

// manageFlags are the flags every `manage` subcommand shares.
type manageFlags struct {
	file    string
	timeout time.Duration
	output  string
}

func (f *manageFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.file, "file", "f", "fleet.yaml", "fleet file (YAML, or the original's WorkersInfo.json list)")
	cmd.Flags().DurationVar(&f.timeout, "connect-timeout", 10*time.Second, "timeout of one SSH connection")
}

// manager loads the fleet file and builds the manager, reporting progress to w.
func (f *manageFlags) manager(cmd *cobra.Command, progress func(host, msg string)) (*management.Manager, error) {
	fl, err := management.Load(f.file)
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the rswarm executable: %w", err)
	}
	stderr := cmd.ErrOrStderr()
	return management.New(fl, management.Options{
		Binary:         exe,
		Progress:       progress,
		Warn:           func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) },
		ConnectTimeout: f.timeout,
	}), nil
}

// progressLines prints "host: message" lines, or one mpb line per host on
// a terminal. stop ends the display.
func progressLines(w io.Writer, hosts []string) (progress func(host, msg string), stop func()) {
	var mu sync.Mutex
	if f, ok := w.(*os.File); !ok || !isatty.IsTerminal(f.Fd()) || !hasWidth(f) {
		return func(host, msg string) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(w, "%s: %s\n", host, msg)
		}, func() {}
	}
	p := mpb.New(mpb.WithOutput(w), mpb.WithWidth(1), mpb.WithAutoRefresh())
	msgs := map[string]*string{}
	bars := map[string]*mpb.Bar{}
	for _, h := range hosts {
		s := "waiting"
		msgs[h] = &s
		bars[h] = p.New(0, mpb.NopStyle(),
			mpb.PrependDecorators(decor.Name(fmt.Sprintf("%-12s", h)), decor.Elapsed(decor.ET_STYLE_GO, decor.WCSyncSpace)),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { mu.Lock(); defer mu.Unlock(); return *msgs[h] })))
	}
	return func(host, msg string) {
			mu.Lock()
			if s, ok := msgs[host]; ok {
				*s = msg
			}
			mu.Unlock()
		}, func() {
			for _, b := range bars {
				b.Abort(false)
			}
			p.Wait()
		}
}

// hasWidth says whether a terminal has columns (a pty without a size
// shows no bars at all).
func hasWidth(f *os.File) bool {
	w, _, err := term.GetSize(int(f.Fd()))
	return err == nil && w > 0
}

func hostNames(fl *management.Fleet) []string {
	var out []string
	if fl.ControlPlane.Host == management.Local {
		out = append(out, management.Local)
	}
	for _, h := range fl.Hosts {
		out = append(out, h.Name)
	}
	return out
}

func printReport(cmd *cobra.Command, rep *management.FleetReport, output string) error {
	w := cmd.OutOrStdout()
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	if err := management.WriteTable(w, rep.Hosts); err != nil {
		return err
	}
	fmt.Fprintf(w, "control plane: %s, frontend %s (on that host)\n", rep.ControlPlane, rep.Frontend)
	return nil
}

func init() {
	manage := &cobra.Command{Use: "manage", Short: "bring a fleet of hosts up over SSH, report it, emulate its network, take it down"}

	var up manageFlags
	upCmd := &cobra.Command{Use: "up", Short: "start the control plane and a worker on every host of the fleet file", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl, err := management.Load(up.file)
			if err != nil {
				return err
			}
			progress, stop := progressLines(cmd.ErrOrStderr(), hostNames(fl))
			m, err := up.manager(cmd, progress)
			if err != nil {
				stop()
				return err
			}
			start := time.Now()
			rep, ok := m.Up(cmd.Context())
			stop()
			if err := printReport(cmd, rep, up.output); err != nil {
				return err
			}
			unchanged := true
			for _, r := range rep.Hosts {
				unchanged = unchanged && r.State == management.StateUnchanged
			}
			if up.output != "json" {
				if unchanged {
					fmt.Fprintln(cmd.OutOrStdout(), "the fleet was already up: nothing changed")
				}
				fmt.Fprintf(cmd.OutOrStdout(), "manage up took %.1fs\n", time.Since(start).Seconds())
			}
			if !ok {
				return &exitError{code: 1, err: errors.New("manage up: some hosts failed (see the table)")}
			}
			return nil
		}}
	up.bind(upCmd)
	upCmd.Flags().StringVarP(&up.output, "output", "o", "table", "table or json")

	var st manageFlags
	stCmd := &cobra.Command{Use: "status", Short: "report every host of the fleet from the live system", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := st.manager(cmd, nil)
			if err != nil {
				return err
			}
			rep, ok := m.Status(cmd.Context())
			if err := printReport(cmd, rep, st.output); err != nil {
				return err
			}
			if !ok {
				return &exitError{code: 1, err: errors.New("manage status: not every host is ready")}
			}
			return nil
		}}
	st.bind(stCmd)
	stCmd.Flags().StringVarP(&st.output, "output", "o", "table", "table or json")

	var dn manageFlags
	dnCmd := &cobra.Command{Use: "down", Short: "stop the workers (by recorded PID) and the control plane, remove RSwarm's containers, clear tc rules", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl, err := management.Load(dn.file)
			if err != nil {
				return err
			}
			progress, stop := progressLines(cmd.ErrOrStderr(), hostNames(fl))
			m, err := dn.manager(cmd, progress)
			if err != nil {
				stop()
				return err
			}
			rep, ok := m.Down(cmd.Context())
			stop()
			if err := printReport(cmd, rep, dn.output); err != nil {
				return err
			}
			if !ok {
				return &exitError{code: 1, err: errors.New("manage down: some hosts failed (see the table)")}
			}
			return nil
		}}
	dn.bind(dnCmd)
	dnCmd.Flags().StringVarP(&dn.output, "output", "o", "table", "table or json")

	manage.AddCommand(upCmd, stCmd, dnCmd, netCommand(), hostCommand())
	addCommand(manage)
}

// netCommand is `manage net`: tc rules on the fleet's hosts.
func netCommand() *cobra.Command {
	var nf manageFlags
	var host, to string
	var sh management.Shape
	net := &cobra.Command{Use: "net", Short: "emulate the network between the fleet's hosts with tc (HTB + netem)"}
	net.PersistentFlags().StringVarP(&nf.file, "file", "f", "fleet.yaml", "fleet file")
	net.PersistentFlags().DurationVar(&nf.timeout, "connect-timeout", 10*time.Second, "timeout of one SSH connection")
	apply := func(cmd *cobra.Command, _ []string) error {
		m, err := nf.manager(cmd, nil)
		if err != nil {
			return err
		}
		if err := m.NetApply(cmd.Context(), host, to, sh); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s -> %s: applied\n", host, to)
		return nil
	}
	bindRule := func(c *cobra.Command) {
		c.Flags().StringVar(&host, "host", "", "host whose outgoing traffic is shaped")
		c.Flags().StringVar(&to, "to", "", "destination host (name or address in the fleet)")
		c.Flags().IntVar(&sh.Port, "port", 0, "only traffic to this destination port")
		c.Flags().StringVar(&sh.Rate, "rate", "", "bandwidth limit (HTB), e.g. 10mbit")
		c.Flags().StringVar(&sh.Delay, "delay", "", "added delay (netem), e.g. 50ms")
		c.Flags().StringVar(&sh.Jitter, "jitter", "", "delay variation (netem), e.g. 5ms")
		c.Flags().StringVar(&sh.Distribution, "distribution", "", "delay distribution: normal, pareto, paretonormal")
		c.Flags().StringVar(&sh.Loss, "loss", "", "packet loss (netem), e.g. 1%")
		_ = c.MarkFlagRequired("host")
		_ = c.MarkFlagRequired("to")
	}
	delay := &cobra.Command{Use: "delay", Short: "delay (and optionally limit) traffic from --host to --to", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if sh.Delay == "" && sh.Loss == "" {
				return errors.New("--delay: missing (or give --loss)")
			}
			return apply(cmd, args)
		}}
	bindRule(delay)
	rate := &cobra.Command{Use: "rate", Short: "limit the bandwidth from --host to --to (HTB)", Args: cobra.NoArgs, RunE: apply}
	bindRule(rate)
	show := &cobra.Command{Use: "show [HOST...]", Short: "list the tc rules on each host",
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := nf.manager(cmd, nil)
			if err != nil {
				return err
			}
			out, err := m.NetShow(cmd.Context(), args...)
			printPerHost(cmd.OutOrStdout(), out)
			return err
		}}
	clear := &cobra.Command{Use: "clear [HOST...]", Short: "remove the tc rules from each host",
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := nf.manager(cmd, nil)
			if err != nil {
				return err
			}
			out, err := m.NetClear(cmd.Context(), args...)
			printPerHost(cmd.OutOrStdout(), out)
			return err
		}}
	net.AddCommand(delay, rate, show, clear)
	return net
}

func printPerHost(w io.Writer, out map[string]string) {
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "== %s\n%s\n", n, out[n])
	}
}

// hostCommand is `manage host`, what `manage` runs on each host over SSH;
// every subcommand prints JSON.
func hostCommand() *cobra.Command {
	host := &cobra.Command{Use: "host", Short: "the host side of manage (run over SSH by manage; prints JSON)", Hidden: true}
	printJSON := func(cmd *cobra.Command, v any) error { return json.NewEncoder(cmd.OutOrStdout()).Encode(v) }
	var workdir string
	probe := &cobra.Command{Use: "probe", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		eng, closeEng := hostEngine()
		defer closeEng()
		ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
		defer cancel()
		return printJSON(cmd, management.ProbeHost(ctx, workdir, eng))
	}}
	probe.Flags().StringVar(&workdir, "workdir", management.DefaultWorkdir, "the host's RSwarm directory")
	var pidfile, logfile string
	spawn := &cobra.Command{Use: "spawn --pidfile P --log L -- ARGV...", Args: cobra.MinimumNArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
		pid, started, restarted, err := management.Spawn(pidfile, logfile, args)
		if err != nil {
			return err
		}
		return printJSON(cmd, map[string]any{"pid": pid, "started": started, "restarted": restarted, "started_at": float64(time.Now().UnixNano()) / 1e9})
	}}
	spawn.Flags().StringVar(&pidfile, "pidfile", "", "PID file")
	spawn.Flags().StringVar(&logfile, "log", "", "log file")
	var stopTimeout time.Duration
	stop := &cobra.Command{Use: "stop --pidfile P", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		pid, err := management.StopPID(pidfile, stopTimeout)
		if errors.Is(err, management.ErrNotRunning) {
			return printJSON(cmd, management.CleanResult{PID: pid})
		}
		if err != nil {
			return err
		}
		return printJSON(cmd, management.CleanResult{PID: pid, Stopped: true})
	}}
	stop.Flags().StringVar(&pidfile, "pidfile", "", "PID file")
	stop.Flags().DurationVar(&stopTimeout, "timeout", 20*time.Second, "SIGKILL after this long")
	var leave bool
	clean := &cobra.Command{Use: "clean", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		eng, closeEng := hostEngine()
		defer closeEng()
		if eng == nil {
			return errors.New("no Docker Engine client")
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 60*time.Second)
		defer cancel()
		r, err := management.CleanHost(ctx, eng, leave)
		if err != nil {
			return err
		}
		return printJSON(cmd, r)
	}}
	clean.Flags().BoolVar(&leave, "leave", false, "also leave the swarm (not on a manager)")
	host.AddCommand(probe, spawn, stop, clean)
	return host
}

// hostEngine is the local Docker Engine as management.Engine, or nil.
func hostEngine() (management.Engine, func()) {
	c, err := engine.New("")
	if err != nil {
		return nil, func() {}
	}
	return hostEngineAdapter{c}, func() { c.Close() }
}

type hostEngineAdapter struct{ c *engine.Client }

func (a hostEngineAdapter) Info(ctx context.Context) (management.EngineInfo, error) {
	in, err := a.c.Info(ctx)
	if err != nil {
		return management.EngineInfo{}, err
	}
	return management.EngineInfo{Hostname: in.Hostname, Version: in.ServerVersion, NodeID: in.Swarm.NodeID,
		SwarmState: in.Swarm.LocalNodeState, Manager: in.Swarm.ControlAvailable, NCPU: in.NCPU, MemTotal: in.MemTotal}, nil
}

// RemoveLabelled removes the containers labelled rswarm.job or rswarm.task.
func (a hostEngineAdapter) RemoveLabelled(ctx context.Context) ([]string, error) {
	seen := map[string]string{}
	for _, l := range []string{api.LabelJob, api.LabelTask} {
		cs, err := a.c.Containers(ctx, map[string]string{l: ""}, true)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			seen[c.ID] = c.Name
		}
	}
	var removed []string
	for id, name := range seen {
		if err := a.c.Remove(ctx, id, true); err != nil && !errors.Is(err, api.ErrNotFound) {
			return removed, err
		}
		removed = append(removed, name)
	}
	sort.Strings(removed)
	return removed, nil
}

func (a hostEngineAdapter) LeaveSwarm(ctx context.Context) (bool, error) {
	in, err := a.c.Info(ctx)
	if err != nil {
		return false, err
	}
	if in.Swarm.ControlAvailable || in.Swarm.LocalNodeState == "inactive" || in.Swarm.LocalNodeState == "" {
		return false, nil
	}
	return true, a.c.SwarmLeave(ctx, true)
}
