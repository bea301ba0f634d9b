package main

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"
)

// rswarm scheduler [set NAME]: the jobmanager's placement strategy.

func init() {
	var cf clientFlags
	show := func(cmd *cobra.Command, set string) error {
		c, err := cf.client(cmd)
		if err != nil {
			return err
		}
		si, err := c.Scheduler(cmd.Context())
		if set != "" {
			si, err = c.SetScheduler(cmd.Context(), set)
		}
		if err != nil {
			return err
		}
		switch {
		case cf.json():
			return cf.printJSON(si)
		case cf.quiet:
			cf.names([]string{si.Name})
			return nil
		}
		names := make([]string, 0, len(si.Strategies))
		for n := range si.Strategies {
			names = append(names, n)
		}
		sort.Strings(names)
		rows := [][]string{{"", "STRATEGY", "DESCRIPTION"}}
		for _, n := range names {
			mark := ""
			if n == si.Name {
				mark = "*"
			}
			rows = append(rows, []string{mark, n, si.Strategies[n]})
		}
		if len(names) == 0 {
			fmt.Fprintln(cf.stdout, si.Name)
			return nil
		}
		return cf.table(rows)
	}
	sched := &cobra.Command{
		Use:   "scheduler",
		Short: "show the placement strategy in use (marked *) and the others",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return show(cmd, "") },
	}
	cf.bind(sched)
	sched.AddCommand(&cobra.Command{
		Use:               "set NAME",
		Short:             "switch the placement strategy; waiting jobs are placed with it from now on",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeStrategies(&cf),
		RunE:              func(cmd *cobra.Command, args []string) error { return show(cmd, args[0]) },
	})
	addCommand(sched)
}
