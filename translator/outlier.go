package translator

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// outlierInterval is how often Envoy returns ejected servers whose
// ejection time is over; it bounds how late a server comes back.
const outlierInterval = time.Second

// outlierDetection ejects servers on consecutive failures of live traffic.
// Errors Envoy sees itself (connect failures, resets, timeouts) are counted
// apart from the 5xx answers a server sends, so each has its own threshold;
// success-rate and failure-percentage ejection stay off, as they need more
// servers and traffic than a control plane has to judge by.
func outlierDetection(o OutlierIR) *clusterv3.OutlierDetection {
	enforce := func(n uint32) *wrapperspb.UInt32Value {
		if n == 0 {
			return wrapperspb.UInt32(0)
		}
		return wrapperspb.UInt32(100)
	}
	threshold := func(n uint32) *wrapperspb.UInt32Value {
		if n == 0 {
			n = 1 << 20 // never reached; enforcement is off anyway
		}
		return wrapperspb.UInt32(n)
	}
	return &clusterv3.OutlierDetection{
		SplitExternalLocalOriginErrors:         true,
		Consecutive_5Xx:                        threshold(o.Consecutive5xx),
		EnforcingConsecutive_5Xx:               enforce(o.Consecutive5xx),
		ConsecutiveLocalOriginFailure:          threshold(o.ConsecutiveConnectFailures),
		EnforcingConsecutiveLocalOriginFailure: enforce(o.ConsecutiveConnectFailures),
		EnforcingConsecutiveGatewayFailure:     wrapperspb.UInt32(0),
		EnforcingSuccessRate:                   wrapperspb.UInt32(0),
		EnforcingLocalOriginSuccessRate:        wrapperspb.UInt32(0),
		Interval:                               duration(outlierInterval),
		BaseEjectionTime:                       duration(o.BaseEjectionTime),
		MaxEjectionPercent:                     wrapperspb.UInt32(o.MaxEjectionPercent),
	}
}
