{{- define "wharf.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}
{{- define "wharf.operatorName" -}}{{ include "wharf.fullname" . | trunc 54 | trimSuffix "-" }}-operator{{- end -}}
{{- define "wharf.labels" -}}
app.kubernetes.io/name: wharf
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
{{- define "wharf.selectorLabels" -}}
app.kubernetes.io/name: wharf
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}
{{- define "wharf.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "wharf.operatorName" .) .Values.serviceAccount.name }}{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}
{{- /* By digest when image.digest is set (the tag is then ignored), else by tag. */ -}}
{{- define "wharf.image" -}}
{{- if .Values.image.digest -}}{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}{{- end -}}
{{- end -}}
{{- /* Where the quick start's AuthService and Registry live. */ -}}
{{- define "wharf.quickstartNamespace" -}}{{ default .Release.Namespace .Values.quickstart.namespace }}{{- end -}}
{{- /* The quick start's spec.storage (AuthService and Registry alike), from .Values.quickstart.storage. */ -}}
{{- define "wharf.quickstartStorage" -}}
mode: {{ .mode }}
{{- if eq .mode "volume" }}
volume:
  size: {{ .volume.size }}
  {{- with .volume.storageClassName }}
  storageClassName: {{ . }}
  {{- end }}
  accessModes:
    {{- toYaml .volume.accessModes | nindent 4 }}
{{- else }}
{{- with .endpoint }}
endpoint: {{ . }}
{{- end }}
region: {{ .region }}
credentialsSecretRef:
  name: {{ .credentialsSecretName }}
{{- end }}
deletionPolicy: {{ .deletionPolicy }}
{{- end -}}
