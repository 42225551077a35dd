{{- define "shoal.fullname" -}}
{{- printf "%s-shoal" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shoal.labels" -}}
app.kubernetes.io/name: shoal
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "shoal.selector" -}}
app.kubernetes.io/name: shoal
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "shoal.tokenSecret" -}}
{{- if .Values.api.existingSecret -}}{{ .Values.api.existingSecret }}{{- else -}}{{ include "shoal.fullname" . }}{{- end -}}
{{- end -}}

{{- define "shoal.sealingSecret" -}}
{{- if .Values.secrets.existingSecret -}}{{ .Values.secrets.existingSecret }}{{- else -}}{{ include "shoal.fullname" . }}{{- end -}}
{{- end -}}

{{/* SHOAL_SECRETS_KEY for the api and the node-agents, when a sealing key is given. */}}
{{- define "shoal.sealingEnv" -}}
{{- if or .Values.secrets.sealingKey .Values.secrets.existingSecret }}
- name: SHOAL_SECRETS_KEY
  valueFrom:
    secretKeyRef: {name: {{ include "shoal.sealingSecret" . }}, key: sealing-key}
{{- end }}
{{- end -}}

{{- define "shoal.kafkaSecret" -}}
{{- if .Values.kafka.sasl.existingSecret -}}{{ .Values.kafka.sasl.existingSecret }}{{- else -}}{{ include "shoal.fullname" . }}{{- end -}}
{{- end -}}

{{/* Environment every service shares (Kafka as its role's principal, and logging), from
the ConfigMap and Secret. Called with (dict "root" $ "role" "api"). */}}
{{- define "shoal.commonEnv" -}}
{{- if .root.Values.kafka.sasl.mechanism }}
- name: SHOAL_KAFKA_SASL_USERNAME
  value: {{ .role | quote }}
- name: SHOAL_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "shoal.kafkaSecret" .root }}, key: kafka-password-{{ .role }}}
{{- end }}
{{- range $name, $value := .root.Values.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "shoal.probes" -}}
readinessProbe:
  httpGet: {path: /readyz, port: http}
  initialDelaySeconds: {{ .Values.probes.initialDelaySeconds }}
  periodSeconds: {{ .Values.probes.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.failureThreshold }}
livenessProbe:
  httpGet: {path: /healthz, port: http}
  initialDelaySeconds: {{ .Values.probes.initialDelaySeconds }}
  periodSeconds: {{ .Values.probes.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.failureThreshold }}
{{- end -}}

{{- define "shoal.tlsVolume" -}}
{{- if .Values.kafka.tls.secretName }}
- name: kafka-tls
  secret: {secretName: {{ .Values.kafka.tls.secretName }}}
{{- end }}
{{- end -}}

{{- define "shoal.tlsMount" -}}
{{- if .Values.kafka.tls.secretName }}
- name: kafka-tls
  mountPath: /etc/shoal/kafka-tls
  readOnly: true
{{- end }}
{{- end -}}
