#!/usr/bin/env bash
# Install the prebuilt OHIF viewer (`dist/` of the npm package @ohif/app) into DEST, rebased to be served
# under /ohif/ by the node. The package is built for the site root: its webpack public path, PUBLIC_URL,
# index.html's links and the CSS's font URLs say "/"; they are rewritten to "/ohif/". The service worker is disabled (it would
# precache the root paths). app-config.js is not used: the node serves its own (pointing at /dicomweb).
# Left out, for the image's size (deploy/README.md): onnxruntime-web (ort/, 136 MB, loaded only by OHIF's AI
# segmentation tools), the slide microscopy viewer (20 MB, for SM images) and the source maps (10 MB); the viewer
# shows CT, SEG and SR without them (tests/web/test_ohif.py).
# Usage: install.sh VERSION DEST     (does nothing when DEST already holds VERSION installed this way)
set -euo pipefail
version="$1"
dest="$2"
marker="$version without ort, microscopy, source maps"
if [ -f "$dest/.version" ] && [ "$(cat "$dest/.version")" = "$marker" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "npm is needed to install OHIF (apt-get install npm)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@ohif/app@$version" >/dev/null && tar xzf ohif-app-"$version".tgz package/dist)
dist="$work/package/dist"
sed -i 's#__webpack_require__\.p = "/";#__webpack_require__.p = "/ohif/";#' "$dist"/*.js
sed -i -e 's#window\.PUBLIC_URL="/"#window.PUBLIC_URL="/ohif/"#g' -e 's#\(href\|src\|content\)="/#\1="/ohif/#g' "$dist/index.html"
sed -i "s#url(/#url(/ohif/#g" "$dist"/*.css
echo "// disabled by dicom-node: no service worker" > "$dist/init-service-worker.js"
rm -rf "$dist/ort" "$dist/dicom-microscopy-viewer"
find "$dist" -name '*.map' -delete
echo "$marker" > "$dist/.version"
rm -rf "$dest.tmp" && mkdir -p "$(dirname "$dest")" && mv "$dist" "$dest.tmp"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "OHIF $version installed in $dest"
