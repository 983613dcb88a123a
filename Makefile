# sdme — build, check, install, test, demo.
PREFIX      ?= /usr
DESTDIR     ?=
CARGO       ?= cargo
PKG_CONFIG  ?= pkg-config
BINDIR      ?= $(PREFIX)/bin
LIBEXECDIR  ?= $(PREFIX)/libexec/sdme
MANDIR      ?= $(PREFIX)/share/man
# systemd's own idea of its directories, with the usual fallbacks.
SYSTEMDSYSTEMUNITDIR ?= $(shell $(PKG_CONFIG) --variable=systemdsystemunitdir systemd 2>/dev/null || echo $(PREFIX)/lib/systemd/system)
SYSTEMGENERATORDIR   ?= $(shell $(PKG_CONFIG) --variable=systemdsystemgeneratordir systemd 2>/dev/null || echo $(PREFIX)/lib/systemd/system-generators)
TMPFILESDIR          ?= $(shell $(PKG_CONFIG) --variable=tmpfilesdir systemd 2>/dev/null || echo $(PREFIX)/lib/tmpfiles.d)
SYSCTLDIR            ?= $(shell $(PKG_CONFIG) --variable=sysctldir systemd 2>/dev/null || echo $(PREFIX)/lib/sysctl.d)
RELEASE := target/release
# Connector binaries run inside arbitrary application roots (the server is
# chrooted into the app's /oci/root, which may lack glibc or have another one),
# so they are linked statically (glibc static-pie). The explicit --target keeps
# RUSTFLAGS away from proc macros. See HACKING.md, "Connectors".
HOST_TRIPLE      := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
CONNECTOR_STATIC ?= target/static/$(HOST_TRIPLE)/release

.PHONY: all build connector-static check install uninstall deb test demo bench clean

all: build

build:
	$(CARGO) build --release --workspace --locked

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

connector-static:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --locked -p sdme-connector \
		--target $(HOST_TRIPLE) --target-dir target/static

install: build connector-static
	install -Dm755 $(RELEASE)/sdme-generator $(DESTDIR)$(SYSTEMGENERATORDIR)/sdme-generator
	install -Dm755 $(RELEASE)/sdme-import $(DESTDIR)$(BINDIR)/sdme-import
	install -Dm755 $(RELEASE)/sdme $(DESTDIR)$(BINDIR)/sdme
	install -Dm755 $(RELEASE)/sdme-nspawn $(DESTDIR)$(LIBEXECDIR)/sdme-nspawn
	install -Dm755 $(RELEASE)/sdme-netns $(DESTDIR)$(LIBEXECDIR)/sdme-netns
	install -Dm755 $(CONNECTOR_STATIC)/sdme-connector-server $(DESTDIR)$(LIBEXECDIR)/sdme-connector-server
	install -Dm755 $(CONNECTOR_STATIC)/sdme-connector-client $(DESTDIR)$(LIBEXECDIR)/sdme-connector-client
	for u in units/*.service units/*.socket units/*.timer units/*.target; do \
		[ -e "$$u" ] && install -Dm644 "$$u" $(DESTDIR)$(SYSTEMDSYSTEMUNITDIR)/$$(basename "$$u"); done; true
	install -Dm644 units/tmpfiles.d/sdme.conf $(DESTDIR)$(TMPFILESDIR)/sdme.conf
	[ -n "$(DESTDIR)" ] || ! command -v systemd-tmpfiles >/dev/null || systemd-tmpfiles --create sdme.conf
	install -Dm644 units/sysctl.d/50-sdme.conf $(DESTDIR)$(SYSCTLDIR)/50-sdme.conf
	[ -n "$(DESTDIR)" ] || { s=$$(ls /usr/lib/systemd/systemd-sysctl /lib/systemd/systemd-sysctl 2>/dev/null | head -1); \
		[ -z "$$s" ] || $$s 50-sdme.conf || \
		echo "make install: could not apply $(SYSCTLDIR)/50-sdme.conf now (read-only /proc/sys?); it applies at boot" >&2; }
	for m in man/*.[0-9]; do [ -e "$$m" ] || continue; s=$${m##*.}; install -Dm644 "$$m" $(DESTDIR)$(MANDIR)/man$$s/$$(basename "$$m"); done
	install -d $(DESTDIR)/etc/sdme

uninstall:
	rm -f $(DESTDIR)$(SYSTEMGENERATORDIR)/sdme-generator $(DESTDIR)$(BINDIR)/sdme-import $(DESTDIR)$(BINDIR)/sdme
	rm -f $(DESTDIR)$(TMPFILESDIR)/sdme.conf $(DESTDIR)$(SYSCTLDIR)/50-sdme.conf
	rm -rf $(DESTDIR)$(LIBEXECDIR)

# sdme_VERSION_ARCH.deb from `make install` (packaging/deb/build.sh), into DEBDIR.
DEBDIR ?= target/deb
deb:
	packaging/deb/build.sh $(DEBDIR)

# The README's second command: installs what the tests need, then runs every tier.
test:
	tests/run-all.sh

# The README's first command: the whole story, offline, on built-in defaults.
demo:
	tests/e2e/demo.sh

bench:
	tests/bench/run-all.sh

clean:
	$(CARGO) clean
