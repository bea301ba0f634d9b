package api

import (
	"strings"
	"testing"
)

func TestIssue10Limits(t *testing.T) {
	long := strings.Repeat("a", 128)
	// A 128-character job name: the generated network name fits, and
	// differs from that of a name differing only in its last character.
	j, err := ParseJob([]byte(`{"job_name":"` + long + `","job_info":{"tasks":{"` + long[:120] + `_x":{"container_name":"` + long[:120] + `_x","image":"busybox","req_cores":1}}}}`))
	if err == nil {
		err = j.Validate(DefaultLimits())
	}
	if err != nil && strings.Contains(err.Error(), "network") {
		t.Errorf("128-character job name refused on the network it never sent: %v", err)
	}
	if got := networkName(long); len(got) > maxNameLen || got == networkName(long[:127]+"b") {
		t.Errorf("networkName(128 chars) = %q (%d chars): must fit %d and differ from a near name", got, len(got), maxNameLen)
	}
	if err := ValidName("job_info.network.name", networkName(long)); err != nil {
		t.Errorf("generated network name refused: %v", err)
	}
	// An image name longer than Docker's 255 is refused, naming the field.
	task := Task{ContainerName: "j_1", Image: strings.Repeat("a", 5000), ReqCores: 1}
	if err := CheckTask("j", task, DefaultLimits()); err == nil || !strings.Contains(err.Error(), "image") {
		t.Errorf("5000-character image: %v, want refused on image", err)
	}
	// One size for a job: 16 MiB with room for each task's placement.
	if err := CheckJobSize(MaxJobBytes-1000, 1); err != nil {
		t.Errorf("a job under the limit refused: %v", err)
	}
	if err := CheckJobSize(MaxJobBytes-1000, 2); err == nil {
		t.Error("a job that would exceed the limit once placed accepted")
	}
}
