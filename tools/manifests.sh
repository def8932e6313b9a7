#!/usr/bin/env bash
# manifests.sh makes the chart (charts/frontdoor) the one source of the raw
# manifests: it copies the generated CRDs (manifests/crds) and the Grafana
# dashboard (manifests/dashboards) into the chart, and renders the chart with
# fixed values (release "frontdoor" in namespace frontdoor-system, the
# Namespace object on, every other value at its default) into
# manifests/deploy/00-namespace.yaml, manifests/deploy/frontdoor.yaml and
# manifests/rbac/control-plane.yaml.
#
#   tools/manifests.sh           write them (make manifests)
#   tools/manifests.sh --check   write them to a temporary copy and fail,
#                                showing the diff, if the tree's differ
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
helm="$root/bin/helm"
[ -x "$helm" ] || { echo "frontdoor manifests: $helm not found: run make tools" >&2; exit 1; }

# The files this script owns, relative to the repository root.
owned=(charts/frontdoor/crds charts/frontdoor/files/dashboards/frontdoor.json
	manifests/deploy/00-namespace.yaml manifests/deploy/frontdoor.yaml manifests/rbac/control-plane.yaml)

# render writes every owned file under $1 from the sources in $root.
render() {
	local out=$1 chart=$root/charts/frontdoor
	mkdir -p "$out/charts/frontdoor/crds" "$out/charts/frontdoor/files/dashboards" "$out/manifests/deploy" "$out/manifests/rbac"
	rm -f "$out"/charts/frontdoor/crds/*.yaml
	cp "$root"/manifests/crds/*.yaml "$out/charts/frontdoor/crds/"
	cp "$root/manifests/dashboards/frontdoor.json" "$out/charts/frontdoor/files/dashboards/frontdoor.json"
	if [ "$out" != "$root" ]; then
		# Render the chart as it would be with the fresh copies.
		local tmpchart=$out/chart-copy/frontdoor
		mkdir -p "$tmpchart" && cp -r "$chart/." "$tmpchart/"
		rm -rf "$tmpchart/crds" "$tmpchart/files/dashboards"
		cp -r "$out/charts/frontdoor/crds" "$tmpchart/crds"
		mkdir -p "$tmpchart/files" && cp -r "$out/charts/frontdoor/files/dashboards" "$tmpchart/files/dashboards"
		chart=$tmpchart
	fi
	local how="helm template frontdoor charts/frontdoor --namespace frontdoor-system --set namespace.create=true"
	"$helm" template frontdoor "$chart" --namespace frontdoor-system --set namespace.create=true |
		awk -v out="$out" -v how="$how" '
			function header(f) {
				if (f in started) return
				started[f] = 1
				print "# Rendered from charts/frontdoor by make manifests (" how "):" > f
				print "# edit the chart, not this file; make verify fails when they disagree." > f
			}
			# Blank lines are held back until a line of the same document
			# follows, so no document ends in the blank line Helm adds.
			/^$/ { blanks++; next }
			/^---$/ { pending = 1; blanks = 0; next }
			pending && /^# Source: / {
				src = $3; sub(/^[^\/]*\/templates\//, "", src)
				if (src == "namespace.yaml") file = out "/manifests/deploy/00-namespace.yaml"
				else if (src == "rbac.yaml") file = out "/manifests/rbac/control-plane.yaml"
				else file = out "/manifests/deploy/frontdoor.yaml"
				header(file)
				print "---" > file
				pending = 0
				next
			}
			pending { print "frontdoor manifests: a document without a # Source: line" > "/dev/stderr"; exit 1 }
			{ for (; blanks > 0; blanks--) print "" > file; print > file }
		'
}

if [ "${1:-}" = --check ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	render "$tmp"
	status=0
	for f in "${owned[@]}"; do
		diff -ru "$root/$f" "$tmp/$f" || status=1
	done
	if [ $status != 0 ]; then
		echo "frontdoor manifests: the chart and the raw manifests disagree (diff above: tree, then rendered): run make manifests and commit" >&2
	fi
	exit $status
fi
render "$root"
