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
RELEASE := target/release

.PHONY: all build check install uninstall test demo bench clean

all: build

build:
	$(CARGO) build --release --workspace --locked

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

install: build
	install -Dm755 $(RELEASE)/sdme-generator $(DESTDIR)$(SYSTEMGENERATORDIR)/sdme-generator
	install -Dm755 $(RELEASE)/sdme-import $(DESTDIR)$(BINDIR)/sdme-import
	install -Dm755 $(RELEASE)/sdme $(DESTDIR)$(BINDIR)/sdme
	install -Dm755 $(RELEASE)/sdme-nspawn $(DESTDIR)$(LIBEXECDIR)/sdme-nspawn
	install -Dm755 $(RELEASE)/sdme-connector-server $(DESTDIR)$(LIBEXECDIR)/sdme-connector-server
	install -Dm755 $(RELEASE)/sdme-connector-client $(DESTDIR)$(LIBEXECDIR)/sdme-connector-client
	for u in units/*.service units/*.socket units/*.timer units/*.target; do \
		[ -e "$$u" ] && install -Dm644 "$$u" $(DESTDIR)$(SYSTEMDSYSTEMUNITDIR)/$$(basename "$$u"); done; true
	for m in man/*.[0-9]; do [ -e "$$m" ] || continue; s=$${m##*.}; install -Dm644 "$$m" $(DESTDIR)$(MANDIR)/man$$s/$$(basename "$$m"); done
	install -d $(DESTDIR)/etc/sdme

uninstall:
	rm -f $(DESTDIR)$(SYSTEMGENERATORDIR)/sdme-generator $(DESTDIR)$(BINDIR)/sdme-import $(DESTDIR)$(BINDIR)/sdme
	rm -rf $(DESTDIR)$(LIBEXECDIR)

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
