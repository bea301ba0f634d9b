// Command rswarm is RSwarm's single binary: every role (frontend,
// jobmanager, globalmanager, discovery, worker), the all-in-one `up`, and the
// tools (place, bench, ...). Each subcommand lives in its own file: it binds
// flags to its component's Config, wires the adapters and runs the component
// until interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

var commands []*cobra.Command

// addCommand registers a subcommand; each subcommand file calls it from init.
func addCommand(c *cobra.Command) { commands = append(commands, c) }

var benchCommands []*cobra.Command

// addBenchCommand registers a benchmark under `rswarm bench`.
func addBenchCommand(c *cobra.Command) { benchCommands = append(benchCommands, c) }

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	root := &cobra.Command{
		Use:           "rswarm",
		Short:         "RSwarm: a job and container scheduler for experiments on Docker Swarm",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("config", "", "YAML file of flag values (flags and RSWARM_* environment variables take precedence)")
	root.PersistentFlags().String("log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().String("log-format", "text", "log format: text or json")
	root.PersistentFlags().String("pprof", "", "serve Go's profiler (net/http/pprof) on this loopback address, e.g. 127.0.0.1:6060")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := loadConfig(cmd); err != nil {
			return err
		}
		if err := checkLogFlags(cmd); err != nil {
			return err
		}
		return startProfiler(cmd)
	}
	root.Version = currentVersion().String()
	root.SetVersionTemplate("rswarm version {{.Version}}\n")
	for _, c := range commands {
		root.AddCommand(c)
	}
	if len(benchCommands) > 0 {
		bench, _, err := root.Find([]string{"bench"})
		if err != nil || bench == root {
			bench = &cobra.Command{Use: "bench", Short: "benchmarks that print their figures"}
			root.AddCommand(bench)
		}
		bench.AddCommand(benchCommands...)
	}
	registerFlagCompletions(root)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rswarm:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

// loadConfig fills every flag the user did not set from RSWARM_<FLAG>
// (upper case, '-' as '_') and then from the YAML file given by --config,
// in that order of precedence.
func loadConfig(cmd *cobra.Command) error {
	var file map[string]any
	if path, _ := cmd.Flags().GetString("config"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if err := yaml.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("config %s: %w", path, err)
		}
		// A command with a --config of its own (stress reads the
		// original's files) checks its keys itself.
		if cmd.Flags().Lookup("config") == cmd.Root().PersistentFlags().Lookup("config") {
			if err := checkConfigKeys(cmd, path, file); err != nil {
				return err
			}
		}
	}
	var ferr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if ferr != nil || f.Changed || f.Name == "config" {
			return
		}
		env := "RSWARM_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := f.Value.Set(v); err != nil {
				ferr = fmt.Errorf("%s=%q: %w", env, v, err)
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			s := fmt.Sprint(v)
			if list, ok := v.([]any); ok {
				parts := make([]string, len(list))
				for i, x := range list {
					parts[i] = fmt.Sprint(x)
				}
				s = strings.Join(parts, ",")
			}
			if err := f.Value.Set(s); err != nil {
				ferr = fmt.Errorf("config key %s=%q: %w", f.Name, s, err)
			}
		}
	})
	return ferr
}

// checkLogFlags refuses a --log-level or --log-format it does not know.
func checkLogFlags(cmd *cobra.Command) error {
	s, _ := cmd.Flags().GetString("log-level")
	if _, err := parseLogLevel(s); err != nil {
		return err
	}
	if f, _ := cmd.Flags().GetString("log-format"); f != "text" && f != "json" {
		return fmt.Errorf("--log-format must be text or json, got %q", f)
	}
	return nil
}

// parseLogLevel reads debug, info, warn or error (any case).
func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("--log-level must be debug, info, warn or error, got %q", s)
}

// newLogger builds the process logger from --log-level and --log-format
// (checked before any command runs).
func newLogger(cmd *cobra.Command) *slog.Logger {
	lvl := new(slog.LevelVar)
	s, _ := cmd.Flags().GetString("log-level")
	if l, err := parseLogLevel(s); err == nil {
		lvl.Set(l)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if f, _ := cmd.Flags().GetString("log-format"); f == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// startProfiler serves net/http/pprof on --pprof (loopback only) for the
// life of the process.
func startProfiler(cmd *cobra.Command) error {
	addr, _ := cmd.Flags().GetString("pprof")
	if addr == "" {
		return nil
	}
	if !isLoopback(addr) {
		return fmt.Errorf("--pprof %s: the profiler may only listen on loopback", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	go func() { _ = http.Serve(ln, mux) }() // lives as long as the process
	return nil
}
