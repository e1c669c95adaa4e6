{{- define "mpanel.fullname" -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mpanel.labels" -}}
app.kubernetes.io/name: mpanel-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "mpanel.selectorLabels" -}}
app.kubernetes.io/name: mpanel-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mpanel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ include "mpanel.fullname" . }}{{- else -}}{{ required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}
