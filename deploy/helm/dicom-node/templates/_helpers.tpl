{{/* The container spec shared by receivers and workers: image, config, secrets, data volume. */}}
{{- define "dicom-node.env" -}}
- name: DICOM_NODE_NODE__NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: DICOM_NODE_HTTP__TOKEN
  valueFrom: {secretKeyRef: {name: {{ .Values.http.existingSecret | default (printf "%s-http" .Release.Name) }}, key: token}}
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

{{/* Ready = it can work: the index answers and the disk has room (/ready's database and disk checks). A PACS or
Triton that is down must not take a receiver out of the Service: instances still arrive and wait. /ready needs
the token, so the probe runs inside the container with it. */}}
{{- define "dicom-node.readiness" -}}
readinessProbe:
  exec:
    command:
      - python
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
