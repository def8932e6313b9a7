package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ServerInfo is the part of Envoy's /server_info a drain needs: which xDS
// node this Envoy is (the control plane's per-node config) and its
// --drain-time-s (how long after a drain starts Envoy closes connections).
type ServerInfo struct {
	NodeID    string
	DrainTime time.Duration
}

// ServerInfo reads GET /server_info.
func (c *Client) ServerInfo(ctx context.Context) (ServerInfo, error) {
	resp, err := c.do(ctx, http.MethodGet, "/server_info")
	if err != nil {
		return ServerInfo{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return ServerInfo{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return ServerInfo{}, fmt.Errorf("GET %s/server_info: %s", c.base, resp.Status)
	}
	return ParseServerInfo(body)
}

// ParseServerInfo parses the body of /server_info (proto3 JSON of
// envoy.admin.v3.ServerInfo: durations as "1s").
func ParseServerInfo(body []byte) (ServerInfo, error) {
	var raw struct {
		Node struct {
			ID string `json:"id"`
		} `json:"node"`
		CommandLineOptions struct {
			DrainTime string `json:"drain_time"`
		} `json:"command_line_options"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return ServerInfo{}, fmt.Errorf("server_info: %w", err)
	}
	info := ServerInfo{NodeID: raw.Node.ID}
	if info.NodeID == "" {
		return ServerInfo{}, fmt.Errorf("server_info: no node id")
	}
	if raw.CommandLineOptions.DrainTime != "" {
		d, err := time.ParseDuration(raw.CommandLineOptions.DrainTime)
		if err != nil {
			return ServerInfo{}, fmt.Errorf("server_info: drain_time %q: %w", raw.CommandLineOptions.DrainTime, err)
		}
		info.DrainTime = d
	}
	return info, nil
}
