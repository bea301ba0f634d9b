package main

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// checkConfigKeys refuses a key of a --config file that is no flag of any
// rswarm command: a misspelt key would otherwise be ignored without a word.
// A key that is a flag of another command only is accepted (one file may
// serve every role), as are config itself and keys of nested maps.
func checkConfigKeys(cmd *cobra.Command, path string, file map[string]any) error {
	known := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		add := func(f *pflag.Flag) { known[f.Name] = true }
		c.Flags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(cmd.Root())
	var unknown []string
	for k := range file {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	k := unknown[0]
	msg := fmt.Sprintf("config %s: unknown key %q", path, k)
	if s := closest(k, known); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	if len(unknown) > 1 {
		msg += fmt.Sprintf(", and %d more unknown keys %q", len(unknown)-1, unknown[1:])
	}
	return fmt.Errorf("%s: keys are flag names, such as strategy or frontend-addr", msg)
}

// closest returns the known name nearest to k in edit distance, if it is
// near enough (at most a third of k's length) to be a likely misspelling.
func closest(k string, known map[string]bool) string {
	best, bestD := "", len(k)/3+1
	for n := range known {
		if d := editDistance(k, n); d < bestD || (d == bestD && best != "" && n < best) {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
