package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/client"
)

// rswarm node ...: the workers, their cores and memory; drain, activate, remove.

func init() {
	var cf clientFlags
	node := &cobra.Command{Use: "node", Short: "list and inspect workers; drain, activate or remove them"}
	cf.bind(node)
	node.AddCommand(nodeLsCmd(&cf), nodeInspectCmd(&cf),
		nodeOpCmd(&cf, "drain", "stop placing new tasks on a worker (its running tasks stay)", (*client.Client).Drain),
		nodeOpCmd(&cf, "activate", "let a drained worker take new tasks again", (*client.Client).Activate),
		nodeOpCmd(&cf, "rm", "take a worker out of the cluster: its unfinished tasks fail", (*client.Client).Leave))
	addCommand(node)
}

// coreBarWidth is the widest core bar node ls draws.
const coreBarWidth = 16

func nodeLsCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "list workers: cores busy/total, memory, status, checkpoint support, last heartbeat",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			ws, err := c.Workers(cmd.Context())
			if err != nil {
				return err
			}
			if ws == nil {
				ws = []*api.Worker{}
			}
			sort.Slice(ws, func(i, k int) bool { return ws[i].ID < ws[k].ID })
			switch {
			case cf.json():
				return cf.printJSON(ws)
			case cf.quiet:
				for _, w := range ws {
					fmt.Fprintln(cf.stdout, w.ID)
				}
				return nil
			}
			now := cf.now()
			rows := [][]string{{"ID", "HOST", "STATUS", "CORES", "MEMORY", "CHECKPOINT", "HEARTBEAT"}}
			for _, w := range ws {
				rows = append(rows, []string{w.ID, orDash(w.Host), string(w.Status),
					coreBar(len(w.BusyCores()), w.Cores, coreBarWidth),
					bytesIEC(w.MemAllocated) + "/" + bytesIEC(w.MemTotal),
					checkpointWord(w), age(now, w.LastHeartbeat) + " ago"})
			}
			return cf.table(rows)
		},
	}
}

func checkpointWord(w *api.Worker) string {
	if w.Checkpoint {
		return "yes"
	}
	return "no"
}

func nodeInspectCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:               "inspect ID",
		Short:             "show a worker: its cores and the tasks holding them, memory, status",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeNodes(cf),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			w, err := c.Worker(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if cf.json() {
				return cf.printJSON(w)
			}
			if cf.quiet {
				cf.names([]string{w.ID})
				return nil
			}
			now := cf.now()
			o := cf.stdout
			fmt.Fprintf(o, "ID:          %s\nHost:        %s\nAddress:     %s\nRuntime:     %s\nStatus:      %s\n", w.ID, orDash(w.Host), orDash(w.Address), orDash(w.Runtime), w.Status)
			fmt.Fprintf(o, "Cores:       %s\n", coreBar(len(w.BusyCores()), w.Cores, 64))
			fmt.Fprintf(o, "Memory:      %s reserved of %s (%s in use)\n", bytesIEC(w.MemAllocated), bytesIEC(w.MemTotal), bytesIEC(w.MemUsed))
			fmt.Fprintf(o, "Joined:      %s\nHeartbeat:   %s ago\n", clock(w.JoinTime), age(now, w.LastHeartbeat))
			if w.Checkpoint {
				fmt.Fprintln(o, "Checkpoint:  yes")
			} else {
				fmt.Fprintf(o, "Checkpoint:  no %s\n", w.CheckpointError)
			}
			busy := w.BusyCores()
			if len(busy) == 0 {
				return nil
			}
			fmt.Fprintln(o, "Busy cores:")
			rows := [][]string{{"  CORE", "TASK"}}
			for _, id := range busy {
				rows = append(rows, []string{"  " + strconv.Itoa(id), orDash(w.CoreTasks[strconv.Itoa(id)])})
			}
			return cf.table(rows)
		},
	}
}

func nodeOpCmd(cf *clientFlags, use, short string, op func(*client.Client, context.Context, string) (*api.Worker, error)) *cobra.Command {
	return &cobra.Command{
		Use:               use + " ID...",
		Short:             short,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeNodes(cf),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			var done []*api.Worker
			failed := 0
			for _, id := range args {
				w, err := op(c, cmd.Context(), id)
				if err != nil {
					failed++
					fmt.Fprintf(cf.stderr, "rswarm: node %s: %v\n", id, err)
					continue
				}
				done = append(done, w)
			}
			switch {
			case cf.json():
				if done == nil {
					done = []*api.Worker{}
				}
				if err := cf.printJSON(done); err != nil {
					return err
				}
			case cf.quiet:
				for _, w := range done {
					fmt.Fprintln(cf.stdout, w.ID)
				}
			default:
				rows := [][]string{{"ID", "STATUS"}}
				for _, w := range done {
					rows = append(rows, []string{w.ID, string(w.Status)})
				}
				if len(done) > 0 {
					if err := cf.table(rows); err != nil {
						return err
					}
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d failed", failed, len(args))
			}
			return nil
		},
	}
}
