#!/usr/bin/env bash
# Build the base images the deploy files start FROM without any image registry (an air-gapped site, or this kind of
# build machine): a Debian root file system made by mmdebstrap from this machine's own apt sources, imported and
# tagged under the official names, so that deploy/Dockerfile's FROM line is used unchanged:
#   docker.io/library/debian:bookworm-slim          the mmdebstrap root file system (minbase)
#   docker.io/library/python:3.11-slim-bookworm     that plus Debian's python3 and python3-venv (3.11 on bookworm)
# The sources are read from the system's apt configuration at build time (`apt-get indextargets`: the same list
# `apt-get update` uses, proxies and mirrors included) and never written into the repository. The host's own CA
# certificates (/usr/local/share/ca-certificates) are trusted inside, so builds behind a TLS-inspecting proxy reach
# PyPI and the npm registry. A site with a registry needs none of this: its builder pulls the official images.
# Usage: build-base.sh ENGINE [SUITE]    (ENGINE: podman or docker; SUITE: bookworm)
set -euo pipefail
engine="${1:-podman}"
suite="${2:-bookworm}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v mmdebstrap >/dev/null || { echo "mmdebstrap is needed (apt-get install mmdebstrap)" >&2; exit 1; }

# One "deb URI SUITE COMPONENT..." line per configured repository of this suite (and its -updates, -security).
sources="$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Identifier: Packages' \
  | awk -v suite="$suite" '$2 == suite || index($2, suite "-") == 1 { c[$1 " " $2] = c[$1 " " $2] " " $3 }
                          END { for (k in c) print "deb " k c[k] }' | sort)"
[ -n "$sources" ] || { echo "no apt source for $suite in this machine's apt configuration" >&2; exit 1; }
echo "Debian $suite from:" >&2
echo "$sources" >&2

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# minbase, no documentation, manual pages or translations (what the official slim images leave out too). /usr merged
# by mmdebstrap's own hook, as the official images are: the usrmerge package would bring Perl (50 MB) along.
echo "$sources" | nice mmdebstrap --variant=minbase --include=ca-certificates \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='mkdir -p "$1/usr/local/share/ca-certificates"' \
  --customize-hook='for c in /usr/local/share/ca-certificates/*.crt; do [ -e "$c" ] && cp "$c" "$1/usr/local/share/ca-certificates/"; done; true' \
  --customize-hook='chroot "$1" update-ca-certificates' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  "$suite" "$work/rootfs.tar" -
"$engine" import --change 'CMD ["bash"]' "$work/rootfs.tar" "docker.io/library/debian:$suite-slim" >/dev/null
nice "$engine" build --network host -t "docker.io/library/python:3.11-slim-$suite" -f "$here/python.Containerfile" "$here"
