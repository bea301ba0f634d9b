package placement

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// explainPacking says why a bin-packing strategy could not place job j:
// t is the task that found no worker, memShort whether some worker had the
// cores for it (so memory was what was short). It reads c after rollback.
func explainPacking(c *Cluster, j Job, t *Task, memShort bool) string {
	switch {
	case c.live == 0:
		return "no workers are registered"
	case c.upN == 0:
		return fmt.Sprintf("no worker is up (%s registered, all down)", plural(c.live, "worker"))
	case !c.couldFit(t.Cores, t.Mem):
		largest := c.sizes.nodes[1]
		switch {
		case t.Cores > int(largest.free):
			return fmt.Sprintf("task %s needs %s; the largest worker that is up has %d", t.Name, plural(t.Cores, "core"), largest.free)
		case t.Mem > largest.mem:
			return fmt.Sprintf("task %s needs %s of memory; the most any worker that is up has is %s", t.Name, formatMem(t.Mem), formatMem(largest.mem))
		}
		return fmt.Sprintf("task %s needs %s and %s of memory; no worker that is up has both", t.Name, plural(t.Cores, "core"), formatMem(t.Mem))
	case memShort:
		return fmt.Sprintf("task %s needs %s and %s of memory; no worker has both free (the most free memory on a worker is %s)",
			t.Name, plural(t.Cores, "core"), formatMem(t.Mem), formatMem(c.freshTree().maxMem()))
	}
	needs := "needs " + describeTasks(j.Tasks)
	f := c.freshTree().maxFree()
	if f <= 0 {
		return needs + fmt.Sprintf("; no worker has a free core (%s up)", plural(c.upN, "worker"))
	}
	return needs + fmt.Sprintf("; the largest free block is %s on %s", plural(f, "core"), plural(c.count[f], "worker"))
}

// describeTasks writes a job's requests, largest first: "2 tasks of 8 cores
// and 1 task of 2 cores".
func describeTasks(ts []Task) string {
	var sizes []int // distinct core counts, descending
	counts := map[int]int{}
	for _, t := range ts {
		if counts[t.Cores] == 0 {
			sizes = append(sizes, t.Cores)
		}
		counts[t.Cores]++
	}
	for i := 1; i < len(sizes); i++ { // insertion sort, descending; few sizes
		for k := i; k > 0 && sizes[k] > sizes[k-1]; k-- {
			sizes[k], sizes[k-1] = sizes[k-1], sizes[k]
		}
	}
	parts := make([]string, len(sizes))
	for i, s := range sizes {
		parts[i] = plural(counts[s], "task") + " of " + plural(s, "core")
	}
	switch len(parts) {
	case 1:
		return parts[0]
	default:
		return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
	}
}

// plural writes "1 core", "4 cores".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// formatCores writes core ids as a cpuset: "0,1,5".
func formatCores(cores []int) string {
	var b strings.Builder
	for i, c := range cores {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(c))
	}
	return b.String()
}

// formatMem writes bytes in decimal units, as the original's "<MB>m": "10 MB", "1.5 GB".
func formatMem(b int64) string {
	if b < 0 && b > math.MinInt64 {
		return "-" + formatMem(-b)
	}
	units := []struct {
		size float64
		name string
	}{{1e12, "TB"}, {1e9, "GB"}, {1e6, "MB"}, {1e3, "kB"}}
	for _, u := range units {
		if float64(b) >= u.size {
			return strings.TrimSuffix(strconv.FormatFloat(float64(b)/u.size, 'f', 1, 64), ".0") + " " + u.name
		}
	}
	return strconv.FormatInt(b, 10) + " B"
}
