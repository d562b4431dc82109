#!/bin/sh
# Installs a built Grace the way packagers expect (`make install`, and the
# Debian package's debian/rules): the binary, the systemd units (their
# paths made from PREFIX), grace(1) and grace.ini(5) (made from the command
# table and etc/grace.ini), the shell completions and the configuration.
#   scripts/install.sh BUILD_DIR [PREFIX [DESTDIR]]
# PREFIX defaults to /usr/local. With PREFIX=/usr the configuration goes to
# /etc and the units to /lib/systemd/system (Debian's places); otherwise
# under PREFIX. An existing configuration file is never overwritten.
set -eu

build=${1:?usage: scripts/install.sh BUILD_DIR [PREFIX [DESTDIR]]}
prefix=${2:-/usr/local}
dest=${3:-}
src=$(cd "$(dirname "$0")/.." && pwd)
grace="$build/grace"
[ -x "$grace" ] || { echo "install: no $grace: build first (make)" >&2; exit 1; }

if [ "$prefix" = /usr ]; then
	sysconfdir=/etc
	unitdir=/lib/systemd/system
else
	sysconfdir=$prefix/etc
	unitdir=$prefix/lib/systemd/system
fi
bindir=$prefix/bin
mandir=$prefix/share/man
version=$("$grace" version --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
# The executor's drop-in goes to its port's instance (grace-kernel@PORT).
executor_port=$("$grace" kernels-list --json | python3 -c 'import json,sys
print(next(k["port"] for k in json.load(sys.stdin)["kernels"] if k["name"] == "executor"))')

install -d "$dest$bindir" "$dest$unitdir" "$dest$unitdir/grace-kernel@$executor_port.service.d" \
	"$dest$mandir/man1" "$dest$mandir/man5" "$dest$sysconfdir/grace" \
	"$dest$prefix/share/bash-completion/completions" "$dest$prefix/share/zsh/vendor-completions" \
	"$dest$prefix/share/fish/vendor_completions.d"
install -m 0755 "$grace" "$dest$bindir/grace"

for unit in grace.service grace-kernel@.service; do
	sed -e "s|@bindir@|$bindir|g" -e "s|@sysconfdir@|$sysconfdir|g" \
		"$src/contrib/systemd/$unit.in" > "$dest$unitdir/$unit"
	chmod 0644 "$dest$unitdir/$unit"
done
install -m 0644 "$src/contrib/systemd/grace-kernel@.socket" "$dest$unitdir/"
install -m 0644 "$src/contrib/systemd/executor-sandbox.conf" \
	"$dest$unitdir/grace-kernel@$executor_port.service.d/sandbox.conf"

"$grace" man | gzip -9n > "$dest$mandir/man1/grace.1.gz"
python3 "$src/scripts/man_ini.py" "$src/etc/grace.ini" "$version" | gzip -9n \
	> "$dest$mandir/man5/grace.ini.5.gz"
chmod 0644 "$dest$mandir/man1/grace.1.gz" "$dest$mandir/man5/grace.ini.5.gz"

"$grace" completion bash > "$dest$prefix/share/bash-completion/completions/grace"
"$grace" completion zsh > "$dest$prefix/share/zsh/vendor-completions/_grace"
"$grace" completion fish > "$dest$prefix/share/fish/vendor_completions.d/grace.fish"
chmod 0644 "$dest$prefix/share/bash-completion/completions/grace" \
	"$dest$prefix/share/zsh/vendor-completions/_grace" \
	"$dest$prefix/share/fish/vendor_completions.d/grace.fish"

conf="$dest$sysconfdir/grace/grace.ini"
[ -e "$conf" ] || install -m 0644 "$src/etc/grace.ini" "$conf"
