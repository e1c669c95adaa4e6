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

{{/* The user a ServiceAccount of the release authenticates as. */}}
{{- define "mpanel.serviceAccountUser" -}}
{{- printf "system:serviceaccount:%s:%s" .root.Release.Namespace .name -}}
{{- end -}}

{{- define "mpanel.bridgeName" -}}
{{- printf "%s-billing-bridge" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* CEL: the field `spec.<name>` is as it was (always true outside UPDATE). */}}
{{- define "mpanel.specUnchanged" -}}
request.operation != 'UPDATE' || (has(object.spec.{{ . }}) ? has(oldObject.spec.{{ . }}) && object.spec.{{ . }} == oldObject.spec.{{ . }} : !has(oldObject.spec.{{ . }}))
{{- end -}}

{{/* CEL variables `<var>` and `old<Var>`: the annotation's value now and before ("" when absent or on CREATE). */}}
{{- define "mpanel.annotationVariables" -}}
- name: {{ .var }}
  expression: >-
    has(object.metadata.annotations) && '{{ .key }}' in object.metadata.annotations
    ? object.metadata.annotations['{{ .key }}'] : ''
- name: old{{ .var | title }}
  expression: >-
    request.operation == 'UPDATE' && has(oldObject.metadata.annotations) && '{{ .key }}' in oldObject.metadata.annotations
    ? oldObject.metadata.annotations['{{ .key }}'] : ''
{{- end -}}

{{/* A billing-fields policy applies only to requests whose user lacks `set-billing-fields` on the resource. */}}
{{- define "mpanel.lacksBillingVerb" -}}
- name: lacks-set-billing-fields
  expression: >-
    !authorizer.group('mpanel.migrahosting.com').resource('{{ . }}').namespace(request.namespace).check('set-billing-fields').allowed()
{{- end -}}
