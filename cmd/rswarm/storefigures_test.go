package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"

	"github.com/rswarm/rswarm/api/apitest"
)

// TestStressStoreFigures runs issue 12's load on the all-in-one system
// and prints what `rswarm stress` prints (jobs Down and lost, waiting p50
// and p99, the longest interval with jobs waiting and none starting, the
// worst gaps between placement rounds and between status applications,
// and the CPU the process had), once per store asked for:
//
//	RSWARM_BENCH_FERRET=1  MongoDB's code path, on an in-process FerretDB
//	RSWARM_BENCH_SQLITE=1  the embedded SQLite store, for the figures beside it
//
// The load is `rswarm up --runtime sim --workers 1000 --cores 16` and
// `rswarm stress --profile steady --feed-constant 50 --interval 0.1
// --turns 600 --task-count 4 --task-cores 1 --command "sleep 5"
// --concurrency 256 --seed 1 --wait`: 500 jobs/s for 60 s. For a quicker
// or smaller look, RSWARM_BENCH_TURNS sets --turns, RSWARM_BENCH_FEED
// --feed-constant and RSWARM_BENCH_WORKERS --workers; RSWARM_BENCH_WAIT bounds the wait for the last jobs
// (default 10m: a store that cannot keep up prints what it reached);
// RSWARM_BENCH_PROFILE=DIR writes a 20 s CPU profile of `rswarm up`, taken
// from 10 s into the run, to DIR/up-<store>.pprof, and one of the test
// process, where FerretDB runs, over the same 20 s to DIR/ferretdb.pprof
// (unless go test -cpuprofile profiles the whole run).
//
//	RSWARM_BENCH_FERRET=1 RSWARM_BENCH_SQLITE=1 go test -run TestStressStoreFigures -v -timeout 60m ./cmd/rswarm
//
// It prints figures and asserts no speed: only that the run ends with
// every figure line printed (a stall, or a store too slow, shows in them).
func TestStressStoreFigures(t *testing.T) {
	stores := map[string]bool{"sqlite": os.Getenv("RSWARM_BENCH_SQLITE") != "", "ferretdb": os.Getenv("RSWARM_BENCH_FERRET") != ""}
	if !stores["sqlite"] && !stores["ferretdb"] {
		t.Skip("prints figures: set RSWARM_BENCH_FERRET=1 and/or RSWARM_BENCH_SQLITE=1 to run")
	}
	turns := envInt(t, "RSWARM_BENCH_TURNS", 600)
	feed := envInt(t, "RSWARM_BENCH_FEED", 50)
	workers := envInt(t, "RSWARM_BENCH_WORKERS", 1000)
	wait := 10 * time.Minute
	if v := os.Getenv("RSWARM_BENCH_WAIT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("RSWARM_BENCH_WAIT: %v", err)
		}
		wait = d
	}
	for _, name := range []string{"sqlite", "ferretdb"} {
		if !stores[name] {
			continue
		}
		t.Run(name, func(t *testing.T) {
			sys := newSystem(t)
			var storeFlags []string
			if name == "ferretdb" {
				uri, err := startFerretDB(t)
				apitest.Need(t, "mongo", err)
				storeFlags = []string{"--mongo-uri", uri, "--mongo-db", "bench"}
			}
			pprofAddr := freeAddr(t)
			up := append([]string{"up", "--runtime", "sim", "--workers", strconv.Itoa(workers), "--cores", "16", "--pprof", pprofAddr}, sys.flags()...)
			start(t, "rswarm up", append(up, storeFlags...)...)
			began := time.Now()
			// Registering a thousand workers writes a thousand records: a
			// slow store needs longer than waitWorkers' minute.
			fmt.Printf("%s: rswarm %s\n", name, strings.Join(append(up, storeFlags...), " "))
			c := sys.client()
			waitWorkersFor(t, c, workers, 10*time.Minute)
			fmt.Printf("%s: %d workers ready %.1f s after start\n", name, workers, time.Since(began).Seconds())

			if dir := os.Getenv("RSWARM_BENCH_PROFILE"); dir != "" {
				done := make(chan struct{})
				t.Cleanup(func() { <-done })
				go func() {
					defer close(done)
					if err := cpuProfile(pprofAddr, filepath.Join(dir, "up-"+name+".pprof"), 10*time.Second, 20*time.Second); err != nil {
						t.Logf("profile of rswarm up: %v", err)
					}
				}()
				if name == "ferretdb" {
					selfDone := make(chan struct{})
					t.Cleanup(func() { <-selfDone })
					go func() {
						defer close(selfDone)
						if err := selfProfile(filepath.Join(dir, "ferretdb.pprof"), 10*time.Second, 20*time.Second); err != nil {
							t.Logf("profile of FerretDB: %v", err)
						}
					}()
				}
			}
			report := filepath.Join(t.TempDir(), "report")
			args := []string{"stress", "--fe", "http://" + sys.fe, "--profile", "steady",
				"--feed-constant", strconv.Itoa(feed), "--interval", "0.1", "--turns", strconv.Itoa(turns),
				"--task-count", "4", "--task-cores", "1", "--command", "sleep 5", "--concurrency", "256", "--seed", "1",
				"--session", "bench" + name, "--wait", "--wait-timeout", wait.String(), "--report", report, "--progress", "off"}
			if name == "ferretdb" {
				args = append(args, storeFlags...)
			} else {
				args = append(args, "--data-dir", sys.dataDir)
			}
			out, err := runRswarm(t, wait+time.Duration(turns)*100*time.Millisecond+10*time.Minute, args...)
			fmt.Printf("---- %s: rswarm %s\n%s", name, strings.Join(args, " "), out)
			if err != nil {
				// A store too slow for the load ends in a timeout or
				// lost jobs: that is a figure too, printed above.
				fmt.Printf("%s: rswarm stress: %v\n", name, err)
			}
			for _, want := range []string{"jobs: ", "waiting (submit to start) p50", "longest interval with jobs waiting and none starting",
				"worst gap between placement rounds", "worst gap between status applications", "CPU of the frontend's process"} {
				if !strings.Contains(out, want) {
					t.Errorf("the output of rswarm stress lacks %q", want)
				}
			}
		})
	}
}

// envInt reads a positive integer from the environment, or returns def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// cpuProfile waits, then fetches a CPU profile of length d from the
// profiler at addr into path.
func cpuProfile(addr, path string, after, d time.Duration) error {
	time.Sleep(after) // a figure's timing, not a test's synchronisation
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profiler answered %s", resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// selfProfile waits, then writes a CPU profile of this process of length d
// to path.
func selfProfile(path string, after, d time.Duration) error {
	time.Sleep(after) // a figure's timing, not a test's synchronisation
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil { // go test -cpuprofile has it
		f.Close()
		os.Remove(path)
		return err
	}
	time.Sleep(d)
	pprof.StopCPUProfile()
	return f.Close()
}

// startFerretDB runs an in-process FerretDB (MongoDB's wire protocol over
// SQLite files in a temporary directory) on a free loopback port until the
// test ends, and returns its MongoDB URI.
func startFerretDB(t *testing.T) (string, error) {
	t.Helper()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:  "sqlite",
		// Durable as RSwarm's own SQLite store (WAL, synchronous NORMAL:
		// no fsync at every commit), so that the two compare.
		SQLiteURL: "file:" + t.TempDir() + "/?_pragma=synchronous(NORMAL)",
		Logger:    slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		return "", fmt.Errorf("start ferretdb: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	uri := make(chan string, 1)
	go func() { uri <- f.MongoDBURI() }() // returns once FerretDB listens
	select {
	case u := <-uri:
		return u, nil
	case <-done:
		return "", errors.New("ferretdb stopped before it listened")
	case <-time.After(time.Minute):
		return "", errors.New("ferretdb did not listen within a minute")
	}
}
