package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	rbacv1 "k8s.io/api/rbac/v1"
)

// wsTokenProtocol is how browser-style WebSocket clients, which cannot set
// an Authorization header, carry a bearer token: as a subprotocol.
func wsTokenProtocol(token string) string {
	return "base64url.bearer.authorization.k8s.io." + base64.RawURLEncoding.EncodeToString([]byte(token))
}

// A WebSocket exec authenticated only by a service-account token in the
// Sec-WebSocket-Protocol header (no client certificate, no Authorization
// header) works through the gateway: the token is reviewed, the exec runs
// as the service account (the only identity granted pods/exec here), the
// channel protocol is negotiated and the token subprotocol is not what the
// server selected. Without the token subprotocol the same request is 401
// before any upgrade.
func TestWebSocketSubprotocolTokenExec(t *testing.T) {
	ctx := setup(t, 2*time.Minute)
	streamingPod(t, ctx)
	serviceAccount(t, ctx, "ws-exec")
	bindRules(t, ctx, "e2e-ws-exec", "system:serviceaccount:default:ws-exec",
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"get", "create"}})
	token := tokenFor(t, ctx, "ws-exec", nil)

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(sb.CA.CertPEM)
	dialer := websocket.Dialer{
		TLSClientConfig:  &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		HandshakeTimeout: 10 * time.Second,
	}
	url := "wss" + strings.TrimPrefix(sb.GatewayURL, "https") + "/api/v1/namespaces/" + streamNamespace + "/pods/" + streamPod +
		"/exec?container=" + streamContainer + "&command=echo&command=hello-ws&stdout=true"

	// No credential at all: refused before the upgrade.
	dialer.Subprotocols = []string{"v5.channel.k8s.io"}
	if conn, resp, err := dialer.DialContext(ctx, url, nil); err == nil {
		conn.Close()
		t.Fatal("WebSocket exec without a credential was upgraded; want 401")
	} else if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("WebSocket exec without a credential: %v (response %v), want 401", err, resp)
	}

	dialer.Subprotocols = []string{"v5.channel.k8s.io", wsTokenProtocol(token)}
	conn, resp, err := dialer.DialContext(ctx, url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("WebSocket exec with the token subprotocol: %v (HTTP %d)", err, status)
	}
	defer conn.Close()
	if got := conn.Subprotocol(); got != "v5.channel.k8s.io" {
		t.Fatalf("negotiated subprotocol %q, want v5.channel.k8s.io", got)
	}
	// v5.channel.k8s.io frames: first byte is the channel (1 stdout, 3
	// status), the rest is data.
	var stdout, status strings.Builder
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) && status.Len() == 0 {
				t.Fatalf("reading exec stream: %v", err)
			}
			break
		}
		if len(msg) == 0 {
			continue
		}
		switch msg[0] {
		case 1:
			stdout.Write(msg[1:])
		case 3:
			status.Write(msg[1:])
		}
	}
	if stdout.String() != "hello-ws\n" {
		t.Errorf("stdout %q, want %q", stdout.String(), "hello-ws\n")
	}
	if !strings.Contains(status.String(), `"status":"Success"`) {
		t.Errorf("exec status %q, want Success", status.String())
	}
}
