package engine

// IdleNetworks lists the networks r's pool holds idle, for the tests.
func IdleNetworks(r *Runtime) []string {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	return append([]string(nil), r.pool.free...)
}

// IdleSandboxes maps the idle networks of r's pool that have a sandbox to
// it, for the tests.
func IdleSandboxes(r *Runtime) map[string]string {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	out := map[string]string{}
	for _, n := range r.pool.free {
		if b := r.pool.boxes[n]; b != "" {
			out[n] = b
		}
	}
	return out
}
