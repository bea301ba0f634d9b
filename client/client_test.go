package client

import "testing"

func TestBaseURL(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "host:port", in: "127.0.0.1:5001", want: "http://127.0.0.1:5001"},
		{name: "name and port", in: "manager.lab:5000", want: "http://manager.lab:5000"},
		{name: "port alone is loopback", in: ":5001", want: "http://127.0.0.1:5001"},
		{name: "IPv6", in: "[::1]:5001", want: "http://[::1]:5001"},
		{name: "http URL", in: "http://10.0.0.1:5001", want: "http://10.0.0.1:5001"},
		{name: "https URL, trailing slash dropped", in: "https://rswarm.example/", want: "https://rswarm.example"},
		{name: "URL with a path prefix", in: "https://proxy.example/rswarm/", want: "https://proxy.example/rswarm"},
		{name: "blanks around", in: "  127.0.0.1:5001 ", want: "http://127.0.0.1:5001"},
		{name: "empty", in: "", wantErr: true},
		{name: "host without port", in: "localhost", wantErr: true},
		{name: "other scheme", in: "ftp://h:21", wantErr: true},
		{name: "URL without host", in: "http://", wantErr: true},
		{name: "query", in: "http://h:1/?x=1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BaseURL(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("BaseURL(%q) = %q, %v; want error %v", tt.in, got, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("BaseURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
