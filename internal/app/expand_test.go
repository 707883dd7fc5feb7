package app

import (
	"os"
	"testing"
)

func TestExpandEnv(t *testing.T) {
	t.Setenv("PIPETEL_T_BROKER", "kafka-0:9093")
	t.Setenv("PIPETEL_T_EMPTY", "")
	os.Unsetenv("PIPETEL_T_UNSET")
	f := func(in, want, wantErr string) {
		t.Helper()
		got, err := expandEnv([]byte(in))
		if wantErr != "" {
			if err == nil || err.Error() != wantErr {
				t.Errorf("expandEnv(%q) error %v, want %q", in, err, wantErr)
			}
			return
		}
		if err != nil || string(got) != want {
			t.Errorf("expandEnv(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	f(`brokers: ["${PIPETEL_T_BROKER}"]`, `brokers: ["kafka-0:9093"]`, "")
	f(`group_id: ${PIPETEL_T_UNSET:-pipetel}`, `group_id: pipetel`, "")
	f(`group_id: ${PIPETEL_T_EMPTY:-pipetel}`, `group_id: pipetel`, "")
	f(`password: a$b$$c`, `password: a$b$c`, "")
	f(`password: $PIPETEL_T_BROKER`, `password: $PIPETEL_T_BROKER`, "")
	f("# uses ${PIPETEL_T_UNSET}\ngroup_id: g # not ${PIPETEL_T_UNSET}\n", "# uses ${PIPETEL_T_UNSET}\ngroup_id: g # not ${PIPETEL_T_UNSET}\n", "")
	f(`group_id: "a #${PIPETEL_T_BROKER}"`, `group_id: "a #kafka-0:9093"`, "")
	f("processor:\n  group_id: ${PIPETEL_T_UNSET}\n", "", "line 2: ${PIPETEL_T_UNSET} is not set in the environment (use ${PIPETEL_T_UNSET:-default} for a default)")

	path := writeConfig(t, "processor: {brokers: [\"${PIPETEL_T_BROKER}\"]}\nstate: {dir: /tmp/x}\n")
	cfg, err := LoadConfig(path)
	if err != nil || len(cfg.Processor.Brokers) != 1 || cfg.Processor.Brokers[0] != "kafka-0:9093" {
		t.Fatalf("loadConfig: %+v, %v", cfg.Processor.Brokers, err)
	}
}
