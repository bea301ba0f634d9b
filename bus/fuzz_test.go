package bus

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzEnvelope decodes arbitrary frames as the loop does: no panic, and a
// decoded envelope encodes and decodes back to itself. Run it with
//
//	go test -run '^$' -fuzz '^FuzzEnvelope$' -fuzztime 90s ./bus
func FuzzEnvelope(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":42,"type":"req","kind":"run_task","ttl_ms":5000,"body":{"job":"j"}}`))
	f.Add([]byte(`{"v":1,"id":42,"type":"rep","kind":"run_task","err":"boom","body":null}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		raw, err := json.Marshal(env)
		if err != nil {
			// Only a body that is not valid JSON could fail, and the
			// decoder never yields one.
			t.Fatalf("re-encoding %q: %v", b, err)
		}
		again, err := decodeEnvelope(raw)
		if err != nil {
			t.Fatalf("decoding the re-encoded %q: %v", raw, err)
		}
		if again.V != env.V || again.ID != env.ID || again.Type != env.Type || again.Kind != env.Kind ||
			again.Err != env.Err || again.TTL != env.TTL || !bytes.Equal(compact(t, again.Body), compact(t, env.Body)) {
			t.Fatalf("round trip changed %+v into %+v", env, again)
		}
	})
}

func compact(t *testing.T, b json.RawMessage) []byte {
	if len(b) == 0 || string(b) == "null" { // an absent body is encoded as null
		return nil
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatalf("body %q is not JSON: %v", b, err)
	}
	return out.Bytes()
}
