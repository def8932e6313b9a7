{{/*
Names, labels and the fixed loopback addresses the Pod's two containers
share. The addresses are not values: ADS and the request service (gRPC),
/metrics and /debug/config (HTTP) and Envoy's admin API must stay on the
Pod's loopback (README "Trust boundaries").
*/}}

{{- define "frontdoor.grpcAddress" -}}127.0.0.1:18000{{- end }}
{{- define "frontdoor.httpAddress" -}}127.0.0.1:18080{{- end }}
{{- define "frontdoor.adminAddress" -}}127.0.0.1:19000{{- end }}
{{- define "frontdoor.probePort" -}}18081{{- end }}

{{/* frontdoor.name: the app name (app.kubernetes.io/name). */}}
{{- define "frontdoor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
frontdoor.fullname names every object: the release name, or
<release>-<name> when the release name does not contain the chart name,
so release "frontdoor" yields the names of the raw manifests.
*/}}
{{- define "frontdoor.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "frontdoor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "frontdoor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "frontdoor.labels" -}}
{{ include "frontdoor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "frontdoor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "frontdoor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
frontdoor.image: registry/repository:tag (or @digest). With
image.registry "localhost" the names are the ones make image builds:
localhost/frontdoor/frontdoor:<version>, localhost/frontdoor/envoy:<envoy>.
*/}}
{{- define "frontdoor.image" -}}
{{- $img := index .root.Values.image .which }}
{{- $repo := $img.repository }}
{{- with .root.Values.image.registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}{{ end }}
{{- if $img.digest }}
{{- printf "%s@%s" $repo $img.digest }}
{{- else }}
{{- printf "%s:%s" $repo (toString (default .default $img.tag)) }}
{{- end }}
{{- end }}

{{/*
frontdoor.inCluster: Kubernetes mode against the cluster the chart is
installed in (the Pod's ServiceAccount, this cluster's RBAC); false in
file mode and with a remote control cluster's kubeconfig.
*/}}
{{- define "frontdoor.inCluster" -}}
{{- if and (eq .Values.config.mode "kubernetes") (not .Values.config.kubernetes.kubeconfigSecret.name) }}true{{ end }}
{{- end }}

{{/* frontdoor.projectedToken: the frontdoor container needs a ServiceAccount token. */}}
{{- define "frontdoor.projectedToken" -}}
{{- if or (include "frontdoor.inCluster" .) .Values.metrics.proxy.enabled }}true{{ end }}
{{- end }}
