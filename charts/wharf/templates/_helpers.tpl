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

{{- /* The namespace of the AuthService NetworkPolicy: the quick start's, else watchNamespace. */ -}}
{{- define "wharf.networkPolicyNamespace" -}}
{{- if .Values.quickstart.enabled }}{{ include "wharf.quickstartNamespace" . }}{{ else }}{{ .Values.watchNamespace }}{{ end -}}
{{- end -}}
{{- /* "true" when the AuthService NetworkPolicy is rendered (values.yaml, networkPolicy.enabled), else "". */ -}}
{{- define "wharf.networkPolicyEnabled" -}}
{{- $np := .Values.networkPolicy }}
{{- $qs := .Values.quickstart }}
{{- $namespace := include "wharf.networkPolicyNamespace" . }}
{{- $hosted := and $qs.enabled (or $qs.registry.host $qs.authService.host) }}
{{- $controllerKnown := or $np.ingressController.namespaceSelector $np.ingressController.podSelector }}
{{- if eq (toString $np.enabled) "auto" }}
{{- /* Without the quick start, AuthServices of watchNamespace may have Ingresses the chart cannot see. */ -}}
{{- if and $namespace (or (and $qs.enabled (not $hosted)) $controllerKnown) }}true{{ end }}
{{- else if eq (toString $np.enabled) "true" }}
{{- if not $namespace }}
{{- fail "networkPolicy.enabled=true needs a namespace to put it in: quickstart.enabled=true or watchNamespace" }}
{{- end }}
{{- if and $hosted (not $controllerKnown) }}
{{- fail "networkPolicy.enabled=true with an Ingress host: set networkPolicy.ingressController (the namespaceSelector and/or podSelector of your Ingress controller's pods), or the policy would shut logins out" }}
{{- end -}}
true
{{- end }}
{{- end -}}
