{{/* The container spec shared by receivers and workers: image, config, secrets, data volume. */}}
{{- define "dicom-node.env" -}}
- name: DICOM_NODE_NODE__NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: DICOM_NODE_HTTP__TOKEN
  valueFrom: {secretKeyRef: {name: {{ .Values.http.existingSecret | default (printf "%s-http" .Release.Name) }}, key: token}}
# The names browsers and clients use (the Service's, an Ingress's): any other Host header is refused (DNS rebinding).
- name: DICOM_NODE_HTTP__ALLOWED_HOSTS
  value: {{ include "dicom-node.allowedHosts" . | quote }}
{{- if .Values.database.enabled }}
- name: DICOM_NODE_DATABASE__URL
  valueFrom: {secretKeyRef: {name: {{ .Values.database.existingSecret | default (printf "%s-database" .Release.Name) }}, key: url}}
{{- end }}
{{- if .Values.triton.url }}
- name: DICOM_NODE_MODELS__URL
  value: {{ .Values.triton.url | quote }}
- name: DICOM_NODE_MODELS__LUNG_SEGMENTATION__BACKEND
  value: triton
- name: DICOM_NODE_MODELS__COVID_CLASSIFIER__BACKEND
  value: triton
{{- end }}
{{- end }}

{{/* Loopback (the probes run inside the pod), the Service's DNS names, and http.allowedHosts (an Ingress's). */}}
{{- define "dicom-node.allowedHosts" -}}
{{- $service := .Release.Name -}}
{{- $namespace := .Release.Namespace -}}
{{- $names := list "localhost" "127.0.0.1" "::1" $service (printf "%s.%s" $service $namespace) (printf "%s.%s.svc" $service $namespace) (printf "%s.%s.svc.cluster.local" $service $namespace) -}}
{{- concat $names .Values.http.allowedHosts | toJson -}}
{{- end }}

{{/* Alive = the process answers: the receiver's DICOM port accepts a connection (closed without a byte, which the node
counts as a health check, not as a refused peer), a worker's /health answers. Exec probes with the image's Python:
Kubernetes and `podman kube play` both run them (podman turns tcpSocket and httpGet probes into nc and curl, which
the image does not have). */}}
{{- define "dicom-node.liveness" -}}
livenessProbe:
  exec:
    command:
      - python3
      - -c
      {{- if eq .check "dicom" }}
      - import socket; socket.create_connection(("127.0.0.1", 11112), timeout=4).close()
      {{- else }}
      - import urllib.request; urllib.request.urlopen("http://127.0.0.1:8080/health", timeout=4)
      {{- end }}
  initialDelaySeconds: 30
  periodSeconds: 20
  timeoutSeconds: 5
{{- end }}

{{/* Ready = it can work: the index answers and the disk has room (/ready's database and disk checks). A PACS or
Triton that is down must not take a receiver out of the Service: instances still arrive and wait. /ready needs
the token, so the probe runs inside the container with it. */}}
{{- define "dicom-node.readiness" -}}
readinessProbe:
  exec:
    command:
      - python3
      - -c
      - |
        import json, os, urllib.error, urllib.request
        request = urllib.request.Request("http://127.0.0.1:8080/ready", headers={"Authorization": "Bearer " + os.environ["DICOM_NODE_HTTP__TOKEN"]})
        try:
            body = json.load(urllib.request.urlopen(request, timeout=4))
        except urllib.error.HTTPError as answer:
            body = json.load(answer)
        raise SystemExit(0 if all(body["checks"][name]["ok"] for name in ("database", "disk")) else 1)
  periodSeconds: 15
  timeoutSeconds: 5
{{- end }}

{{- define "dicom-node.volumes" -}}
- name: config
  configMap: {name: {{ .Release.Name }}-config}
- name: data
  persistentVolumeClaim: {claimName: {{ .Release.Name }}-data}
{{- end }}
