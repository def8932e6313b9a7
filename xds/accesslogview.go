package xds

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	dynmodfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_modules/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kubefrontdoor/frontdoor/envoy"
)

// AccessLogView gives a node the access log file it asks for in its node
// metadata (frontdoor bootstrap --access-log): Envoys sharing a host and a
// serve each write their own file instead of interleaving lines in serve's
// --access-log. Only file access logs move (Envoy's, and the in-process
// module's own); a serve logging to stdout already logs to each Envoy's own.
func AccessLogView(node *corev3.Node, res map[string][]types.Resource) (map[string][]types.Resource, string, error) {
	v, ok := node.GetMetadata().GetFields()[envoy.NodeMetaAccessLogPath]
	if !ok {
		return res, "", nil
	}
	path := v.GetStringValue()
	if !filepath.IsAbs(path) {
		return nil, "", fmt.Errorf("node metadata %s: %q is not an absolute path", envoy.NodeMetaAccessLogPath, path)
	}
	listeners := make([]types.Resource, len(res[resourcev3.ListenerType]))
	changed := false
	for i, r := range res[resourcev3.ListenerType] {
		listeners[i] = r
		l, ok := r.(*listenerv3.Listener)
		if !ok {
			continue
		}
		moved, err := moveAccessLogs(l, path)
		if err != nil {
			return nil, "", err
		}
		if moved != nil {
			listeners[i], changed = moved, true
		}
	}
	if !changed {
		return res, "", nil
	}
	out := make(map[string][]types.Resource, len(res))
	for typ, rs := range res {
		out[typ] = rs
	}
	out[resourcev3.ListenerType] = listeners
	return out, "log=" + path, nil
}

// moveAccessLogs returns a copy of l whose HTTP connection managers' file
// access logs write to path, or nil when l has none.
func moveAccessLogs(l *listenerv3.Listener, path string) (*listenerv3.Listener, error) {
	var out *listenerv3.Listener
	for ci, fc := range l.GetFilterChains() {
		for fi, f := range fc.GetFilters() {
			hcm := &hcmv3.HttpConnectionManager{}
			if f.GetTypedConfig() == nil || !f.GetTypedConfig().MessageIs(hcm) {
				continue
			}
			if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
				return nil, fmt.Errorf("listener %s: %w", l.GetName(), err)
			}
			moved := false
			for _, al := range hcm.GetAccessLog() {
				file := &filev3.FileAccessLog{}
				if al.GetTypedConfig() == nil || !al.GetTypedConfig().MessageIs(file) {
					continue
				}
				if err := al.GetTypedConfig().UnmarshalTo(file); err != nil {
					return nil, fmt.Errorf("listener %s: %w", l.GetName(), err)
				}
				file.Path = path
				a, err := deterministicAny(file)
				if err != nil {
					return nil, err
				}
				al.ConfigType = &accesslogv3.AccessLog_TypedConfig{TypedConfig: a}
				moved = true
			}
			for _, hf := range hcm.GetHttpFilters() {
				m, err := moveModuleAccessLog(hf, path)
				if err != nil {
					return nil, fmt.Errorf("listener %s: %w", l.GetName(), err)
				}
				moved = moved || m
			}
			if !moved {
				continue
			}
			if out == nil {
				out = proto.Clone(l).(*listenerv3.Listener) //nolint:forcetypeassert // cloned from a *Listener
			}
			a, err := deterministicAny(hcm)
			if err != nil {
				return nil, err
			}
			out.FilterChains[ci].Filters[fi].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
		}
	}
	return out, nil
}

// moveModuleAccessLog points the in-process module's own access log
// (envoy.InProcessConfig.AccessLog, which writes the lines of the requests
// the module filters) at path, when it writes to a file; it reports
// whether it changed f.
func moveModuleAccessLog(f *hcmv3.HttpFilter, path string) (bool, error) {
	dm := &dynmodfilterv3.DynamicModuleFilter{}
	if f.GetName() != envoy.InProcessFilterName || f.GetTypedConfig() == nil || !f.GetTypedConfig().MessageIs(dm) {
		return false, nil
	}
	if err := f.GetTypedConfig().UnmarshalTo(dm); err != nil {
		return false, err
	}
	raw := &wrapperspb.StringValue{}
	if err := dm.GetFilterConfig().UnmarshalTo(raw); err != nil {
		return false, fmt.Errorf("the in-process filter config: %w", err)
	}
	var cfg envoy.InProcessConfig
	if err := json.Unmarshal([]byte(raw.GetValue()), &cfg); err != nil {
		return false, fmt.Errorf("the in-process filter config: %w", err)
	}
	if cfg.AccessLog == nil || cfg.AccessLog.Path == "" {
		return false, nil
	}
	cfg.AccessLog.Path = path
	b, err := json.Marshal(cfg)
	if err != nil {
		return false, err
	}
	if dm.FilterConfig, err = deterministicAny(wrapperspb.String(string(b))); err != nil {
		return false, err
	}
	a, err := deterministicAny(dm)
	if err != nil {
		return false, err
	}
	f.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}
	return true, nil
}

// deterministicAny packs m with a stable encoding (the access log format
// is a Struct, a map): equal config gives equal bytes, so a republish does
// not look like a listener change to Envoy.
func deterministicAny(m proto.Message) (*anypb.Any, error) {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		return nil, err
	}
	return a, nil
}
