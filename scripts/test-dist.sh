#!/usr/bin/env bash
# test-dist.sh: checks what `make dist` ships and the systemd unit.
#  - every archive and SBOM matches SHA256SUMS;
#  - the linux/amd64 archive's binaries run and print the stamped version;
#  - the binaries are static (no dynamic loader) and stripped;
#  - each SBOM is CycloneDX JSON naming go-libp2p;
#  - systemd-analyze verify accepts dist/systemd/ztmeshd.service.
set -euo pipefail
out=$1 version=$2
cd "$(dirname "$0")/.."
fail() { echo "test-dist: $*" >&2; exit 1; }

(cd "$out" && sha256sum -c --quiet SHA256SUMS) || fail "SHA256SUMS does not match"
for arch in amd64 arm64; do
  [ -f "$out/ztmesh-$version-linux-$arch.tar.gz" ] || fail "no archive for linux/$arch"
done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
tar -C "$tmp" -xzf "$out/ztmesh-$version-linux-amd64.tar.gz"
dir=$tmp/ztmesh-$version-linux-amd64
for f in ztmesh ztmeshd ztmeshd.service ztmeshd.example.yaml README.md; do
  [ -f "$dir/$f" ] || fail "archive lacks $f"
done
"$dir/ztmeshd" --version | grep -qF "ztmeshd $version (" || fail "ztmeshd --version: $("$dir/ztmeshd" --version)"
"$dir/ztmesh" version | grep -qF "ztmesh $version (" || fail "ztmesh version: $("$dir/ztmesh" version)"
file_out=$(file "$dir/ztmeshd" 2>/dev/null || true)
if [ -n "$file_out" ]; then
  echo "$file_out" | grep -q "statically linked" || fail "ztmeshd is not static: $file_out"
  echo "$file_out" | grep -q "stripped" || fail "ztmeshd is not stripped: $file_out"
fi
for sbom in "$out"/*.cdx.json; do
  grep -q '"bomFormat": *"CycloneDX"' "$sbom" || fail "$sbom is not CycloneDX"
  grep -q 'github.com/libp2p/go-libp2p' "$sbom" || fail "$sbom does not list go-libp2p"
done

# The unit names /usr/local/bin/ztmeshd; verify it against the shipped binary.
sed "s|/usr/local/bin/ztmeshd|$dir/ztmeshd|g" dist/systemd/ztmeshd.service > "$tmp/ztmeshd.service"
systemd-analyze verify "$tmp/ztmeshd.service" 2>&1 | tee "$tmp/verify.out"
if grep -v "^$" "$tmp/verify.out" | grep -qv "Failed to connect"; then
  fail "systemd-analyze verify: $(cat "$tmp/verify.out")"
fi
echo "test-dist: $version archives, sums, SBOMs and the systemd unit check out"
