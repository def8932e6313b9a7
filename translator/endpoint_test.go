package translator

import "testing"

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    ServerIR
		wantErr bool
	}{
		{in: "https://10.0.0.1:6443", want: ServerIR{Host: "10.0.0.1", Port: 6443, IsIP: true}},
		{in: "https://10.0.0.1", want: ServerIR{Host: "10.0.0.1", Port: 443, IsIP: true}},
		{in: "https://10.0.0.1/", want: ServerIR{Host: "10.0.0.1", Port: 443, IsIP: true}},
		{in: "https://[fd00::1]:6443", want: ServerIR{Host: "fd00::1", Port: 6443, IsIP: true}},
		{in: "https://[FD00:0::1]", want: ServerIR{Host: "fd00::1", Port: 443, IsIP: true}},
		{in: "https://api.example.com:6443", want: ServerIR{Host: "api.example.com", Port: 6443}},
		{in: "https://API.Example.com", want: ServerIR{Host: "api.example.com", Port: 443}},
		{in: "https://localhost:1", want: ServerIR{Host: "localhost", Port: 1}},
		{in: "https://h:65535", want: ServerIR{Host: "h", Port: 65535}},

		{in: "", wantErr: true},
		{in: "10.0.0.1:6443", wantErr: true},
		{in: "http://10.0.0.1:6443", wantErr: true},
		{in: "HTTPS://10.0.0.1:6443", want: ServerIR{Host: "10.0.0.1", Port: 6443, IsIP: true}}, // url lowercases the scheme
		{in: "https://10.0.0.1:0", wantErr: true},
		{in: "https://10.0.0.1:65536", wantErr: true},
		{in: "https://10.0.0.1:-1", wantErr: true},
		{in: "https://10.0.0.1:", wantErr: true},
		{in: "https://10.0.0.1:https", wantErr: true},
		{in: "https://10.0.0.1:6443/api", wantErr: true},
		{in: "https://10.0.0.1:6443?x=1", wantErr: true},
		{in: "https://10.0.0.1:6443?", wantErr: true},
		{in: "https://10.0.0.1:6443#f", wantErr: true},
		{in: "https://user:pw@10.0.0.1:6443", wantErr: true},
		{in: "https://:6443", wantErr: true},
		{in: "https://", wantErr: true},
		{in: "https:10.0.0.1", wantErr: true},
		{in: "https://fd00::1", wantErr: true},
		{in: "https://[fe80::1%25eth0]:6443", wantErr: true},
		{in: "https://[api.example.com]:6443", wantErr: true},
		{in: "https://999.1.1.1", wantErr: true},
		{in: "https://10.0.0", wantErr: true},
		{in: "https://under_score.example.com", wantErr: true},
		{in: "https://-bad.example.com", wantErr: true},
		{in: "https://a b", wantErr: true},
	} {
		got, err := parseEndpoint(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("parseEndpoint(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseEndpoint(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}
