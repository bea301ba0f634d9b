package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
)

func TestJobCache(t *testing.T) {
	dir := t.TempDir()
	a, b := openSQLite(t, dir), openSQLite(t, dir)
	mustCreate(t, a, apitest.Job("j", 2, 1, "sleep 1"))
	tests := []struct {
		name string
		step func(t *testing.T)
		want api.State // of j_task1, read through a
	}{
		{
			name: "what a caller changes in a job it got is not seen by the next reader",
			step: func(t *testing.T) {
				mustGet(t, a, "j").Info.Tasks[0].Status = api.Failed
			},
			want: api.Ready,
		},
		{
			name: "a change refused by fn leaves the job as it was",
			step: func(t *testing.T) {
				_, err := a.UpdateJob(t.Context(), "j", func(j *api.Job) error {
					j.Info.Tasks[0].Status = api.Failed
					return errors.New("no")
				})
				if err == nil {
					t.Fatal("UpdateJob with a failing fn succeeded")
				}
			},
			want: api.Ready,
		},
		{
			name: "a write by another store on the file is seen",
			step: func(t *testing.T) {
				if _, err := b.UpdateJob(t.Context(), "j", func(j *api.Job) error {
					j.Info.Tasks[0].Status = api.Scheduled
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			},
			want: api.Scheduled,
		},
		{
			name: "a write by this store is seen by the other",
			step: func(t *testing.T) {
				if _, err := a.UpdateJob(t.Context(), "j", func(j *api.Job) error {
					j.Info.Tasks[0].Status = api.Deployed
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if got := mustGet(t, b, "j").Info.Tasks[0].Status; got != api.Deployed {
					t.Fatalf("the other store reads %v, want Deployed", got)
				}
			},
			want: api.Deployed,
		},
		{
			name: "a job deleted and created again is the new one",
			step: func(t *testing.T) {
				if err := b.DeleteJob(t.Context(), "j"); err != nil {
					t.Fatal(err)
				}
				mustCreate(t, b, apitest.Job("j", 2, 1, "sleep 1"))
			},
			want: api.Ready,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.step(t)
			for _, read := range []func() *api.Job{
				func() *api.Job { return mustGet(t, a, "j") },
				func() *api.Job {
					js, err := a.ListJobs(t.Context(), JobFilter{})
					if err != nil || len(js) != 1 {
						t.Fatalf("ListJobs = %v, %v", js, err)
					}
					return js[0]
				},
			} {
				if got := read().Info.Tasks[0].Status; got != tt.want {
					t.Fatalf("j_task1 is %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestJobCacheBound(t *testing.T) {
	c := newJobCache(10, 1<<20)
	for i := range 25 {
		name := fmt.Sprintf("j%d", i)
		doc := fmt.Sprintf(`{"job_name":%q,"job_info":{"network":{},"tasks":{}}}`, name)
		j, err := c.decode(name, doc)
		if err != nil || j.Name != name {
			t.Fatalf("decode %s = %+v, %v", name, j, err)
		}
		if n := len(c.m); n > 10 {
			t.Fatalf("%d entries after %d jobs, want at most 10", n, i+1)
		}
	}
	if _, ok := c.m["j24"]; !ok {
		t.Fatal("the job just decoded is not remembered")
	}
}

func TestJobCacheBoundInBytes(t *testing.T) {
	// 64 KiB of documents at most: 100 documents of about 2 KiB each would
	// be 200 KiB; one of 16 KiB (above an eighth) is never remembered.
	const maxBytes = 64 << 10
	c := newJobCache(1000, maxBytes)
	pad := strings.Repeat("x", 2000)
	for i := range 100 {
		name := fmt.Sprintf("j%d", i)
		doc := fmt.Sprintf(`{"job_name":%q,"job_info":{"network":{"name":%q},"tasks":{}}}`, name, pad)
		if _, err := c.decode(name, doc); err != nil {
			t.Fatal(err)
		}
		sum := 0
		for _, e := range c.m {
			sum += len(e.doc)
		}
		if sum != c.bytes || sum > maxBytes {
			t.Fatalf("after %d jobs: %d bytes held (counted %d), want at most %d", i+1, sum, c.bytes, maxBytes)
		}
	}
	big := fmt.Sprintf(`{"job_name":"big","job_info":{"network":{"name":%q},"tasks":{}}}`, strings.Repeat("y", 16<<10))
	if _, err := c.decode("big", big); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.m["big"]; ok {
		t.Error("a document above an eighth of the bound was remembered")
	}
}
