package schemas

// The series shape that every exposition of the metrics shares, the state's
// aggregates and the publishers' in-memory series alike.

// Default histogram bounds, in seconds. Pipeline events run from
// milliseconds to minutes; network operations from a millisecond to tens of
// seconds. Do not modify them; copy them.
var (
	DefaultDurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	DefaultLatencyBuckets  = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
)

// DefaultMaxLabelValues is how many distinct event names (and, separately,
// operations) get series of their own when no cap is configured.
const DefaultMaxLabelValues = 1000

// OtherLabelValue is the event name (network: operation) under which the
// metrics of names past the cap are counted. A metric really named "other"
// shares that series.
const OtherLabelValue = "other"
