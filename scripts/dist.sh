#!/usr/bin/env bash
# dist.sh VERSION COMMIT DATE OUTDIR: static release archives of ztmesh and
# ztmeshd for linux/amd64 and linux/arm64, a CycloneDX SBOM of each binary,
# and SHA256SUMS over all of them. `make dist` runs it.
set -euo pipefail
version=$1 commit=$2 date=$3 out=$4
cd "$(dirname "$0")/.."
GO=${GO:-go}
CYCLONEDX=github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0
bi=github.com/ztmesh/ztmesh/internal/buildinfo
ldflags="-s -w -X $bi.version=$version -X $bi.commit=$commit -X $bi.date=$date"

rm -rf "$out" && mkdir -p "$out"
out=$(cd "$out" && pwd)
# The SBOM tool reads the main module's version from git with a library that
# does not follow git worktrees: it reads a plain clone of the commit.
src=$(mktemp -d); trap 'rm -rf "$src"' EXIT
git clone --quiet . "$src/ztmesh"
# Built for this machine once: under GOARCH=arm64, go run would build it for arm64.
GOBIN=$src/bin $GO install $CYCLONEDX
for arch in amd64 arm64; do
  name=ztmesh-$version-linux-$arch
  stage=$out/$name
  mkdir -p "$stage"
  for cmd in ztmesh ztmeshd; do
    GOOS=linux GOARCH=$arch CGO_ENABLED=0 $GO build -trimpath -ldflags "$ldflags" -o "$stage/$cmd" ./cmd/$cmd
    (cd "$src/ztmesh" && GOOS=linux GOARCH=$arch CGO_ENABLED=0 "$src/bin/cyclonedx-gomod" app -json -licenses -main cmd/$cmd \
      -output "$out/$name.$cmd.cdx.json" . 2>"$out/sbom.log") || { cat "$out/sbom.log" >&2; exit 1; }
    rm -f "$out/sbom.log"
  done
  cp dist/systemd/ztmeshd.service docs/ztmeshd.example.yaml "$stage/"
  cp README.md "$stage/README.md"
  tar -C "$out" --owner=0 --group=0 --numeric-owner --mtime="$date" -czf "$out/$name.tar.gz" "$name"
  rm -rf "$stage"
done
(cd "$out" && sha256sum ./*.tar.gz ./*.cdx.json | sed 's| \./| |' > SHA256SUMS)
echo "release $version in $out:"
ls -l "$out"
