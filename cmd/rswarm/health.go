package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rswarm/rswarm/bus"
)

// `rswarm health` is the probe of container healthchecks: it exits 0 when
// the role answers, 1 when not. An HTTP role is asked GET <url> (its
// /healthz or /readyz); a bus-only role is sent a request it does not
// serve over its bus, and any answer, even a refusal, proves it alive.
func init() {
	var ep endpoints
	var busAddr, role string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "health [URL]",
		Short: "probe a role: GET URL (e.g. http://127.0.0.1:5001/readyz), or --bus ENDPOINT --role ROLE; exit 0 if it answers",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			var err error
			switch {
			case len(args) == 1 && busAddr == "":
				err = probeHTTP(ctx, args[0])
			case len(args) == 0 && busAddr != "":
				err = probeBus(ctx, &ep, role, busAddr)
			default:
				return errors.New("give either a URL or --bus (with --role)")
			}
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("unhealthy: %w", err)}
			}
			fmt.Fprintln(cmd.OutOrStdout(), "healthy")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&busAddr, "bus", "", "bus endpoint of a role to probe, e.g. tcp://127.0.0.1:2990")
	f.StringVar(&role, "role", "jobmanager", "role serving --bus: jobmanager, discovery or globalmanager")
	f.DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	f.StringVar(&ep.dataDir, "data-dir", "./data", "data directory (bus keys are in <data-dir>/bus)")
	f.StringVar(&ep.busKeysDir, "bus-keys-dir", "", "directory of the bus key pairs (default <data-dir>/bus)")
	f.BoolVar(&ep.busAuth, "bus-auth", true, "the bus uses CURVE")
	ep.serverKeys = map[string]string{}
	addCommand(cmd)
}

func probeHTTP(ctx context.Context, url string) error {
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		url = "http://" + url
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func probeBus(ctx context.Context, ep *endpoints, role, addr string) error {
	// The probe connects as the frontend does (any key of the data
	// directory is trusted).
	c, err := ep.dialBus("frontend", role, addr, identity("health"), nil, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	err = c.Request(ctx, "health_probe", struct{}{}, nil)
	var re *bus.RemoteError
	if err == nil || errors.As(err, &re) {
		return nil // it answered
	}
	return err
}
