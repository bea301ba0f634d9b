package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rswarm/rswarm/client"
)

// The client commands (job, task, node, scheduler, events) talk to the REST
// APIs through package client. Each group binds clientFlags as persistent
// flags, so that every subcommand takes them; RSWARM_ADDR and the other
// RSWARM_* variables fill them as for every flag.

// clientFlags are the flags of every client command.
type clientFlags struct {
	addr, gmAddr        string
	apiToken, tokenFile string
	output              string
	quiet               bool
	now                 func() time.Time
	stdout, stderr      io.Writer
}

func (f *clientFlags) bind(cmd *cobra.Command) {
	p := cmd.PersistentFlags()
	p.StringVar(&f.addr, "addr", client.DefaultAddr, "frontend address: host:port or URL (env RSWARM_ADDR)")
	p.StringVar(&f.gmAddr, "gm-addr", client.DefaultGMAddr, "globalmanager address: host:port or URL (env RSWARM_GM_ADDR)")
	p.StringVar(&f.apiToken, "api-token", "", "bearer token of the REST APIs (env RSWARM_API_TOKEN)")
	p.StringVar(&f.tokenFile, "api-token-file", "", "file holding the API token")
	p.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	p.BoolVarP(&f.quiet, "quiet", "q", false, "print names (or ids) only")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
}

// client returns the API client the flags describe, after checking -o.
func (f *clientFlags) client(cmd *cobra.Command) (*client.Client, error) {
	if f.output != "table" && f.output != "json" {
		return nil, fmt.Errorf("--output must be table or json, got %q", f.output)
	}
	f.stdout, f.stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
	if f.now == nil {
		f.now = time.Now
	}
	token := f.apiToken
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("api token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return client.New(f.addr, f.gmAddr, token)
}

func (f *clientFlags) json() bool { return f.output == "json" }

// printJSON writes v as indented JSON.
func (f *clientFlags) printJSON(v any) error {
	enc := json.NewEncoder(f.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes rows (the first is the header) as aligned columns.
func (f *clientFlags) table(rows [][]string) error {
	tw := tabwriter.NewWriter(f.stdout, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// names writes one name a line (-q).
func (f *clientFlags) names(names []string) {
	for _, n := range names {
		fmt.Fprintln(f.stdout, n)
	}
}

// coreBar draws busy of total cores as a bar of at most width cells,
// "[####....] 4/8": one cell a core up to width cores, scaled beyond; a
// busy core never rounds to an empty bar, nor a free one to a full bar.
func coreBar(busy, total, width int) string {
	if total <= 0 {
		return fmt.Sprintf("[] %d/%d", busy, total)
	}
	busy = max(0, min(busy, total))
	cells := min(total, width)
	filled := int(math.Round(float64(busy) * float64(cells) / float64(total)))
	if busy > 0 && filled == 0 {
		filled = 1
	}
	if busy < total && filled == cells {
		filled = cells - 1
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", cells-filled) + "] " + fmt.Sprintf("%d/%d", busy, total)
}

// bytesIEC writes a size in binary units, as Docker does: "512MiB", "1.5GiB".
func bytesIEC(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%dB", b)
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit && exp < 5; n /= unit {
		div *= unit
		exp++
	}
	v := float64(b) / float64(div)
	s := fmt.Sprintf("%.1f", v)
	s = strings.TrimSuffix(s, ".0")
	return s + string("KMGTPE"[exp]) + "iB"
}

// age writes how long ago epoch seconds t was, as "3s", "5m", "2h", "4d";
// "-" for 0.
func age(now time.Time, t float64) string {
	if t <= 0 {
		return "-"
	}
	d := now.Sub(time.Unix(0, int64(t*1e9)))
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// clock writes epoch seconds as local time, "-" for 0.
func clock(t float64) string {
	if t <= 0 {
		return "-"
	}
	return time.Unix(0, int64(t*1e9)).Format("2006-01-02 15:04:05.000")
}

// truncate shortens s to n runes with an ellipsis.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// printJSONLine writes v as one line of JSON (for streams).
func (f *clientFlags) printJSONLine(v any) error {
	return json.NewEncoder(f.stdout).Encode(v)
}
