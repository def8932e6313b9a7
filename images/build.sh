#!/usr/bin/env bash
# images/build.sh builds Frontdoor's two OCI images with podman (no Docker
# daemon, no registry: both are FROM scratch) and saves each as an OCI
# archive under _images/, ready for `podman load`, `skopeo copy` or any
# registry push (_images/images.json names what the last build made):
#
#   localhost/frontdoor/frontdoor:$VERSION     _images/frontdoor-$VERSION.oci.tar
#   localhost/frontdoor/envoy:$ENVOY_VERSION   _images/envoy-$ENVOY_VERSION.oci.tar
#
# `make image` runs it with VERSION as the Makefile computes it, after
# tools/install.sh put the pinned bin/envoy and podman in place. The Go artifacts are built
# here, not taken from bin/: frontdoor must be static (CGO_ENABLED=0) for an
# empty base, and both are built -trimpath so no build path leaks in.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../tools/versions.env
. "$root/tools/versions.env"
VERSION=${VERSION:?VERSION is required (make image sets it)}
GO=${GO:-go}
out="$root/_images"
fail() { echo "make image: $*" >&2; exit 1; }

command -v podman >/dev/null 2>&1 || fail "podman not found: run 'bash tools/install.sh podman' (Debian: apt-get install podman runc)"
[ -x "$root/bin/envoy" ] || fail "bin/envoy missing: run 'make tools'"
# An image tag is [A-Za-z0-9_.-], at most 128 characters, not starting with . or -.
[[ $VERSION =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || fail "VERSION '$VERSION' is not a valid image tag"

# The same containers.conf the deployment test uses: the default nofile
# ulimit podman sets is refused inside some build containers.
conf=$(mktemp)
stage=$(mktemp -d)
trap 'rm -rf "$stage" "$conf"' EXIT
printf '[containers]\ndefault_ulimits = []\n' >"$conf"
export CONTAINERS_CONF=$conf

revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
source_url=https://github.com/kubefrontdoor/frontdoor

fd="$stage/frontdoor/rootfs"
ev="$stage/envoy/rootfs"
mkdir -p "$fd/usr/local/bin" "$ev/usr/local/bin" "$ev/usr/local/lib/frontdoor"

echo ">> frontdoor $VERSION (static, CGO_ENABLED=0)"
(cd "$root" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w -X main.version=$VERSION" \
	-o "$fd/usr/local/bin/frontdoor" ./cmd/frontdoor)
if ldd "$fd/usr/local/bin/frontdoor" >/dev/null 2>&1; then
	fail "frontdoor is dynamically linked; the image has no libraries"
fi
cp "$fd/usr/local/bin/frontdoor" "$ev/usr/local/bin/frontdoor"

echo ">> libfrontdoor.so (the in-process module)"
(cd "$root" && CGO_ENABLED=1 "$GO" build -trimpath -buildmode=c-shared \
	-o "$ev/usr/local/lib/frontdoor/libfrontdoor.so" ./cmd/frontdoor-module)
rm -f "$ev/usr/local/lib/frontdoor/libfrontdoor.h"
install -m 0755 "$root/bin/envoy" "$ev/usr/local/bin/envoy"

# copy_libs copies every library ldd lists for the given files to the same
# path in the image (the real file, not the host's symlink), so the dynamic
# loader finds each one where it was linked against without an ld.so.cache.
copy_libs() {
	local lib
	for lib in $(ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $1 !~ /:$/ {print $1}' | sort -u); do
		mkdir -p "$ev$(dirname "$lib")"
		cp -L "$lib" "$ev$lib"
		echo "   $lib"
	done
	if ldd "$@" | grep 'not found' >/dev/null; then # not -q: see the smoke test below
		ldd "$@" >&2
		fail "a library Envoy or the module needs is missing on this host"
	fi
}
echo ">> envoy $ENVOY_VERSION libraries (ldd bin/envoy libfrontdoor.so)"
copy_libs "$ev/usr/local/bin/envoy" "$ev/usr/local/lib/frontdoor/libfrontdoor.so"

mkdir -p "$out"
build() { # name tag context
	echo ">> image $2"
	podman build --quiet --timestamp 0 --pull=never -f "$root/images/$1/Containerfile" -t "$2" \
		--build-arg VERSION="$VERSION" --build-arg ENVOY_VERSION="$ENVOY_VERSION" \
		--build-arg REVISION="$revision" --build-arg SOURCE="$source_url" "$3" >/dev/null
}
save() { # tag archive
	rm -f "$2"
	podman save --quiet --format oci-archive -o "$2" "$1"
	echo "   $2"
}
fdimage=localhost/frontdoor/frontdoor:$VERSION
evimage=localhost/frontdoor/envoy:$ENVOY_VERSION
build frontdoor "$fdimage" "$stage/frontdoor"
build envoy "$evimage" "$stage/envoy"

# Smoke: each image starts its entrypoint as the user it declares.
# The output is read whole before it is matched: grep -q stops reading at
# its first match, and podman fails the run when its next write finds the
# pipe closed ("attaching to container: write /dev/stdout: broken pipe").
smoke=$(podman run --rm --runtime runc --network none "$fdimage" version) || smoke=""
grep -qx "frontdoor $VERSION" <<<"$smoke" ||
	fail "$fdimage does not run 'frontdoor version' (it printed: $smoke)"
smoke=$(podman run --rm --runtime runc --network none "$evimage" --version) || smoke=""
grep -q "/$ENVOY_VERSION/" <<<"$smoke" ||
	fail "$evimage does not run 'envoy --version' (it printed: $smoke)"

save "$fdimage" "$out/frontdoor-$VERSION.oci.tar"
save "$evimage" "$out/envoy-$ENVOY_VERSION.oci.tar"
# What the last build made, for the deployment test (tests/deploy).
cat >"$out/images.json" <<JSON
{
  "frontdoor": {"image": "$fdimage", "version": "$VERSION", "archive": "frontdoor-$VERSION.oci.tar"},
  "envoy": {"image": "$evimage", "version": "$ENVOY_VERSION", "archive": "envoy-$ENVOY_VERSION.oci.tar"}
}
JSON
