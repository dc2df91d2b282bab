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

{{/* The probes run the image's Python (dicom_node/probes.py): Kubernetes and `podman kube play` both run exec
probes, while podman turns tcpSocket and httpGet probes into nc and curl, which the image does not have, and joins
an exec probe's arguments into one shell line (so: no spaces or quotes in them).
Alive = the process answers: the receiver's DICOM port accepts a connection (closed without a byte, which the node
counts as a health check, not as a refused peer), a worker's /health answers. */}}
{{- define "dicom-node.liveness" -}}
livenessProbe:
  exec:
    command: [python3, -P, -m, dicom_node.probes, {{ .check }}]
  initialDelaySeconds: 30
  periodSeconds: 20
  timeoutSeconds: 5
{{- end }}

{{/* Ready = it can work: the index answers and the disk has room (/ready's database and disk checks, with the
token). A PACS or Triton that is down must not take a receiver out of the Service: instances still arrive and wait. */}}
{{- define "dicom-node.readiness" -}}
readinessProbe:
  exec:
    command: [python3, -P, -m, dicom_node.probes, ready]
  periodSeconds: 15
  timeoutSeconds: 5
{{- end }}

{{- define "dicom-node.volumes" -}}
- name: config
  configMap: {name: {{ .Release.Name }}-config}
- name: data
  persistentVolumeClaim: {claimName: {{ .Release.Name }}-data}
{{- end }}
