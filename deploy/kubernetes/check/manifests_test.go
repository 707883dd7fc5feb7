// Package check decodes pipetel's Kubernetes manifests strictly into the
// Kubernetes API types, in a module of its own so that pipetel's go.mod
// stays free of k8s.io.
package check

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// strict decodes one manifest into out, refusing fields the type lacks.
func strict(doc []byte, out any) error {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	return dec.Decode(out)
}

// rendered is what `kubectl kustomize` makes of the directory, or the
// files themselves when kubectl is not installed.
func rendered(t *testing.T) [][]byte {
	t.Helper()
	if _, err := exec.LookPath("kubectl"); err == nil {
		out, err := exec.Command("kubectl", "kustomize", "..").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl kustomize: %v\n%s", err, out)
		}
		return bytes.Split(out, []byte("\n---\n"))
	}
	t.Log("kubectl not found: checking the files one by one, without kustomize")
	var docs [][]byte
	for _, f := range []string{"namespace.yaml", "configmap.yaml", "statefulset.yaml", "service-members.yaml", "service-api.yaml", "poddisruptionbudget.yaml"} {
		data, err := os.ReadFile("../" + f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, data)
	}
	return docs
}

func TestManifestsDecodeStrictly(t *testing.T) {
	kinds := map[string]int{}
	var sts appsv1.StatefulSet
	var members, api corev1.Service
	var cm corev1.ConfigMap
	for _, doc := range rendered(t) {
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		kinds[meta.Kind]++
		var err error
		switch meta.Kind {
		case "Namespace":
			err = strict(doc, &corev1.Namespace{})
		case "ConfigMap":
			err = strict(doc, &cm)
		case "StatefulSet":
			err = strict(doc, &sts)
		case "Service":
			if meta.Metadata.Name == "pipetel-members" {
				err = strict(doc, &members)
			} else {
				err = strict(doc, &api)
			}
		case "PodDisruptionBudget":
			err = strict(doc, &policyv1.PodDisruptionBudget{})
		default:
			err = fmt.Errorf("unexpected kind %q", meta.Kind)
		}
		if err != nil {
			t.Errorf("%s %s: %v", meta.Kind, meta.Metadata.Name, err)
		}
	}
	want := map[string]int{"Namespace": 1, "ConfigMap": 1, "StatefulSet": 1, "Service": 2, "PodDisruptionBudget": 1}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("kinds %v, want %v", kinds, want)
	}
	// What pipetel relies on, not just what Kubernetes accepts.
	if members.Spec.ClusterIP != "None" || sts.Spec.ServiceName != members.Name {
		t.Errorf("the StatefulSet's serviceName %q must be the headless Service %q (clusterIP %q)", sts.Spec.ServiceName, members.Name, members.Spec.ClusterIP)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	args := strings.Join(c.Args, " ")
	if !strings.Contains(args, "--advertise-http=$(POD_NAME)."+members.Name+".$(POD_NAMESPACE).svc:9464") {
		t.Errorf("args %q: each pod must advertise its own DNS name under the headless Service", args)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: readiness %+v, liveness %+v", c.ReadinessProbe, c.LivenessProbe)
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 || c.VolumeMounts[0].MountPath != "/var/lib/pipetel" {
		t.Errorf("the state directory must be a volume claim per pod: %+v", c.VolumeMounts)
	}
	if !strings.Contains(cm.Data["pipetel.yaml"], "dir: /var/lib/pipetel") {
		t.Errorf("the configuration's state.dir must be the mounted volume:\n%s", cm.Data["pipetel.yaml"])
	}
	if sts.Spec.Template.Spec.TerminationGracePeriodSeconds == nil || *sts.Spec.Template.Spec.TerminationGracePeriodSeconds < 30 {
		t.Errorf("terminationGracePeriodSeconds %v: a drain needs time", sts.Spec.Template.Spec.TerminationGracePeriodSeconds)
	}
	for _, e := range c.Env {
		if strings.Contains(e.Name, "PASSWORD") || strings.Contains(e.Name, "API_KEY") {
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("env %s must come from a Secret", e.Name)
			}
		}
	}
}

// TestConfigMapIsValid runs `pipetel validate` on the ConfigMap's
// configuration with the flags the StatefulSet passes.
func TestConfigMapIsValid(t *testing.T) {
	var cm corev1.ConfigMap
	data, err := os.ReadFile("../configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := strict(data, &cm); err != nil {
		t.Fatal(err)
	}
	cfg := t.TempDir() + "/pipetel.yaml"
	if err := os.WriteFile(cfg, []byte(cm.Data["pipetel.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", "./cmd/pipetel", "validate", "--config", cfg,
		"--advertise-http", "pipetel-0.pipetel-members.telemetry.svc:9464")
	cmd.Dir = "../../.."
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "valid") {
		t.Fatalf("pipetel validate: %v\n%s", err, out)
	}
}
