package placement

import (
	"strconv"
	"testing"
)

// BenchmarkSchedule10k measures Schedule per job: rounds of 1,000 queued
// jobs of 1-4 tasks against 10,000 workers, best fit and backfill, each
// round starting from the same (empty) cluster.
func BenchmarkSchedule10k(b *testing.B) {
	c := NewCluster()
	for i := range 10000 {
		if err := c.AddWorker("w"+strconv.Itoa(i), 64, 64*gb); err != nil {
			b.Fatal(err)
		}
	}
	queue := make([]Job, 1000)
	for i := range queue {
		sizes := []int{1 + i%8}
		for k := 0; k < i%4; k++ {
			sizes = append(sizes, 1+(i+k)%16)
		}
		queue[i] = Job{Name: "w" + strconv.Itoa(i), Tasks: tasks("w"+strconv.Itoa(i), sizes...), Seq: uint64(i)}
	}
	s, _ := New(BestFit, Options{})
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += len(queue) {
		q := queue[:min(len(queue), b.N-done)]
		placedJobs, _ := Schedule(c, s, q, 0, QueueOptions{})
		b.StopTimer()
		for _, d := range placedJobs {
			for _, a := range d.Assignments {
				c.Release(a.Task)
			}
		}
		b.StartTimer()
	}
}
