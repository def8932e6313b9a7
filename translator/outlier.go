package translator

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kubefrontdoor/frontdoor/api/v1alpha1"
)

// Outlier-detection defaults (the CRD's defaults, applied again for file
// mode).
const (
	DefaultConsecutive5xx             = 5
	DefaultConsecutiveConnectFailures = 3
	DefaultBaseEjectionTime           = 10 * time.Second
	DefaultMaxEjectionPercent         = 50

	// outlierInterval is how often Envoy returns ejected servers whose
	// ejection time is over; it bounds how late a server comes back.
	outlierInterval = time.Second
)

func buildOutlier(st *statusBuilder, od v1alpha1.OutlierDetection) OutlierIR {
	out := OutlierIR{
		Consecutive5xx:             DefaultConsecutive5xx,
		ConsecutiveConnectFailures: DefaultConsecutiveConnectFailures,
		BaseEjectionTime:           DefaultBaseEjectionTime,
		MaxEjectionPercent:         DefaultMaxEjectionPercent,
	}
	count := func(field string, v *int32, max int32, dst *uint32) {
		switch {
		case v == nil:
		case *v < 0 || *v > max:
			st.reject(v1alpha1.ReasonInvalidHealthCheck, fmt.Sprintf("outlierDetection.%s %d must be between 0 and %d", field, *v, max))
		default:
			*dst = uint32(*v)
		}
	}
	count("consecutive5xx", od.Consecutive5xx, 1<<20, &out.Consecutive5xx)
	count("consecutiveConnectFailures", od.ConsecutiveConnectFailures, 1<<20, &out.ConsecutiveConnectFailures)
	count("maxEjectionPercent", od.MaxEjectionPercent, 100, &out.MaxEjectionPercent)
	if od.BaseEjectionTime != nil {
		if d := od.BaseEjectionTime.Duration; d < time.Millisecond {
			st.reject(v1alpha1.ReasonInvalidHealthCheck, fmt.Sprintf("outlierDetection.baseEjectionTime %s must be at least 1ms", d))
		} else {
			out.BaseEjectionTime = d
		}
	}
	return out
}

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
