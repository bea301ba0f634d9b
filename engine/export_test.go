package engine

// IdleNetworks lists the networks r's pool holds idle, for the tests.
func IdleNetworks(r *Runtime) []string {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	return append([]string(nil), r.pool.free...)
}
