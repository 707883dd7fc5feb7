package schemas

import (
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, r := range append(benchRecords,
		Record{Schema: EventSchema, Kind: KindRetry, TaskID: "é\"\\\n\u2028\U0001F600", Time: testTime},
		Record{Schema: EventSchema, Kind: KindEnd, TaskID: "t", Time: testTime, Error: "boom"},
		Record{Schema: EventSchema, Kind: KindStart, TaskID: "t", EventName: "e", Time: testTime, ProcessID: int64p(0)},
		Record{Schema: NetworkSchema, Kind: KindEnd, TaskID: "t", Time: testTime, BytesSent: 1<<63 - 1, Error: "x"},
	) {
		b, err := Encode(r)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", r, err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(%s): %v", b, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip of %s\n got %+v\nwant %+v", b, got, r)
		}
	}
}
