{{/* Names, labels and secret names shared by the templates. */}}
{{- define "provisiond.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "provisiond.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "provisiond.selectorLabels" -}}
app.kubernetes.io/name: {{ include "provisiond.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "provisiond.labels" -}}
{{ include "provisiond.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "provisiond.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "provisiond.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret the chart creates for whatever has no existingSecret. */}}
{{- define "provisiond.secretName" -}}
{{- include "provisiond.fullname" . -}}
{{- end -}}

{{- define "provisiond.storeSecret" -}}
{{- default (include "provisiond.secretName" .) .Values.store.existingSecret -}}
{{- end -}}

{{- define "provisiond.scimSecret" -}}
{{- default (include "provisiond.secretName" .) .Values.scim.existingSecret -}}
{{- end -}}

{{- define "provisiond.oktaSecret" -}}
{{- default (include "provisiond.secretName" .) .Values.agent.okta.existingSecret -}}
{{- end -}}

{{- define "provisiond.tlsSecret" -}}
{{- if .Values.tls.existingSecret -}}
{{- .Values.tls.existingSecret -}}
{{- else -}}
{{- printf "%s-tls" (include "provisiond.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* A token kept across upgrades: the one in the live Secret, else the value, else a new random one. */}}
{{- define "provisiond.keptToken" -}}
{{- $secret := lookup "v1" "Secret" .ctx.Release.Namespace (include "provisiond.secretName" .ctx) -}}
{{- if and $secret (index $secret.data .key) -}}
{{- index $secret.data .key | b64dec -}}
{{- else if .value -}}
{{- .value -}}
{{- else -}}
{{- randAlphaNum 40 -}}
{{- end -}}
{{- end -}}

{{/* The StatefulSet's pod names, comma-separated: the Role's resourceNames and the nodes' peer list. */}}
{{- define "provisiond.podNames" -}}
{{- $fullname := include "provisiond.fullname" . -}}
{{- $names := list -}}
{{- range $i := until (int .Values.replicaCount) -}}
{{- $names = append $names (printf "%s-%d" $fullname $i) -}}
{{- end -}}
{{- join "," $names -}}
{{- end -}}

{{/* The etcd endpoints the nodes use: the bundled members' stable names, or the configured ones. */}}
{{- define "provisiond.etcdEndpoints" -}}
{{- if .Values.etcd.bundled.enabled -}}
{{- if .Values.etcd.endpoints -}}
{{- fail "set etcd.endpoints or etcd.bundled.enabled, not both: with the bundled etcd the chart names its members" -}}
{{- end -}}
{{- if or .Values.etcd.existingSecret .Values.etcd.username .Values.etcd.tls.existingSecret -}}
{{- fail "etcd.existingSecret, etcd.username and etcd.tls are for your own etcd: the bundled one has no auth (networkPolicy.enabled keeps others out)" -}}
{{- end -}}
{{- $fullname := include "provisiond.fullname" . -}}
{{- $eps := list -}}
{{- range $i := until 3 -}}
{{- $eps = append $eps (printf "%s-etcd-%d.%s-etcd-headless.%s.svc:2379" $fullname $i $fullname $.Release.Namespace) -}}
{{- end -}}
{{- join "," $eps -}}
{{- else -}}
{{- required "etcd.endpoints is required (or etcd.bundled.enabled): the nodes elect their primary through etcd" .Values.etcd.endpoints -}}
{{- end -}}
{{- end -}}

{{/* The bundled etcd's own name, so that no selector of the nodes (Services, PDB, spread) takes in its pods. */}}
{{- define "provisiond.etcdSelectorLabels" -}}
app.kubernetes.io/name: {{ include "provisiond.name" . }}-etcd
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: etcd
{{- end -}}

{{- define "provisiond.etcdLabels" -}}
{{ include "provisiond.etcdSelectorLabels" . }}
app.kubernetes.io/version: {{ .Values.etcd.bundled.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "provisiond.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "provisiond.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{- end -}}
