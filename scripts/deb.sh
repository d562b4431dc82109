#!/bin/sh
# The Debian package from an existing build directory, without building
# again: scripts/install.sh stages it as debian/rules does, then the same
# debhelper steps dpkg-buildpackage runs after the build (users, tmpfiles,
# systemd snippets, dependencies, control, md5sums, dpkg-deb).
#   scripts/deb.sh BUILD_DIR OUT_DIR      prints the .deb's path
# `dpkg-buildpackage -us -uc` builds the same from a clean tree.
set -eu

build=$(cd "${1:?usage: scripts/deb.sh BUILD_DIR OUT_DIR}" && pwd)
out=${2:?usage: scripts/deb.sh BUILD_DIR OUT_DIR}
src=$(cd "$(dirname "$0")/.." && pwd)
for tool in dh_installsystemd dpkg-deb dpkg-shlibdeps; do
	command -v "$tool" >/dev/null || {
		echo "deb: $tool is missing: scripts/bootstrap.sh --test installs it" >&2; exit 1; }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$src/debian" "$work/debian"
mkdir -p "$work/scripts"
"$src/scripts/install.sh" "$build" /usr "$work/debian/grace"
cd "$work"
# No debian/rules run here: debhelper's steps one by one, quietly.
export DH_QUIET=1
dh_installdocs
dh_installchangelogs
dh_installsystemd grace.service
dh_installsysusers
dh_installtmpfiles
dh_installdeb
dh_strip --no-automatic-dbgsym 2>/dev/null || true
dh_compress
dh_fixperms
dh_shlibdeps
dh_gencontrol
dh_md5sums
dh_builddeb --destdir="$out" >/dev/null
ls "$out"/grace_*.deb
